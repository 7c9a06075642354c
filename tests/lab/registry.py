"""The lab's container registry: Debian's ``docker-registry`` on 127.0.0.1 with a self-signed CA,
TLS and htpasswd (bcrypt) authentication. Started and stopped by the lab (``lab.up/down``)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .processes import stop_process

ADDRESS = os.environ.get("ISAAC_LAB_REGISTRY", "127.0.0.1:5443")
USER = "labreg"
PASSWORD = "lab-registry-pass-7"  # noqa: S105 - a throw-away credential of the test lab
PROCESS = "docker-registry"
ROBOT_USER = "labrobot"  # a second account: a login that replaces the saved one
ROBOT_PASSWORD = "lab-robot-pass-3"  # noqa: S105 - a throw-away credential of the test lab
PCS_GATEWAY = os.environ.get("ISAAC_LAB_PCS_GATEWAY", "172.30.77.1")
"""The lab PCs' network gateway (``tests/lab/fleet.py``): the PCs reach the registry there, through
a relay, so its certificate names that address too."""
SANS = ("localhost", "127.0.0.1", PCS_GATEWAY)


def folder(lab_dir: Path) -> Path:
    return lab_dir / "registry"


def _certificates(base: Path) -> None:
    """A CA and a server certificate for :data:`SANS` (made once per lab folder, again when the
    names changed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls = base / "tls"
    names = "\n".join(SANS) + "\n"
    if (tls / "server.crt").exists() and (tls / "names").is_file():
        if (tls / "names").read_text() == names:
            return
    tls.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "isaac-deploy-lab-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost")]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SANS[1:]]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tls / "ca.crt").write_bytes(ca.public_bytes(pem))
    (tls / "server.crt").write_bytes(server.public_bytes(pem))
    (tls / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tls / "server.key").chmod(0o600)
    (tls / "names").write_text(names)


def _config(base: Path) -> Path:
    import bcrypt

    (base / "auth").mkdir(parents=True, exist_ok=True)
    (base / "auth" / "htpasswd").write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user, password in ((USER, PASSWORD), (ROBOT_USER, ROBOT_PASSWORD))
        )
    )
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http:\n  addr: {ADDRESS}\n"
        f"  tls: {{certificate: {base / 'tls/server.crt'}, key: {base / 'tls/server.key'}}}\n"
        f"auth:\n  htpasswd: {{realm: isaac-deploy-lab, path: {base / 'auth/htpasswd'}}}\n"
    )
    return config


def answers(base: Path) -> bool:
    """True when the registry asks for credentials over TLS (401 from /v2/)."""
    context = ssl.create_default_context(cafile=str(base / "tls" / "ca.crt"))
    try:
        urllib.request.urlopen(f"https://{ADDRESS}/v2/", context=context, timeout=2)  # noqa: S310
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False
    return False


def start(lab_dir: Path, started: dict, save) -> dict:
    base = folder(lab_dir)
    _certificates(base)
    info = {
        "address": ADDRESS,
        "user": USER,
        "password": PASSWORD,
        "robot_user": ROBOT_USER,
        "robot_password": ROBOT_PASSWORD,
        "ca": str(base / "tls" / "ca.crt"),
        "cert_dir": str(base / "certs"),
    }
    (base / "certs").mkdir(parents=True, exist_ok=True)
    (base / "certs" / "ca.crt").write_bytes((base / "tls" / "ca.crt").read_bytes())
    if answers(base):
        return info
    config = _config(base)
    log = open(base / "registry.log", "ab")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen(
        [PROCESS, "serve", str(config)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    started["registry"] = {"pid": proc.pid}
    save(started)
    deadline = time.monotonic() + 15
    while not answers(base):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"docker-registry did not come up: {(base / 'registry.log').read_text()[-1500:]}"
            )
        time.sleep(0.05)
    return info


def stop(started: dict, save) -> None:
    info = started.pop("registry", None)
    if not info:
        return
    stop_process(info["pid"], PROCESS, timeout=5)
    save(started)


def manifest_layers(registry: dict, repository: str, tag: str) -> dict[str, int]:
    """The compressed layers of ``repository:tag`` in the lab registry (``registry``: the lab's
    registry info), from its manifest: {digest: bytes}."""
    request = urllib.request.Request(
        f"https://{registry['address']}/v2/{repository}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json",
            "Authorization": "Basic "
            + base64.b64encode(f"{registry['user']}:{registry['password']}".encode()).decode(),
        },
    )
    context = ssl.create_default_context(cafile=registry["ca"])
    with urllib.request.urlopen(request, context=context) as answer:  # noqa: S310 - the lab's
        manifest = json.load(answer)
    return {layer["digest"]: layer["size"] for layer in manifest["layers"]}
