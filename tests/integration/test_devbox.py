"""The dev container a developer lives in, against the real engine and a real X server: GUI
apps over X11 for the user, uid 2000 and rootless profiles on a local display and through a
real ``ssh -X`` session (a real sshd with X11 forwarding), ROS 2 from the dev image's ROS 2
layer (the lab's stand-in packages, tests/lab/ros2_standin.py) in ``run`` and ``attach``, and
the shell history kept across ``stop`` + ``run``.

The X server is Debian's Xvfb with authentication on (``-auth``): a client without the cookie
is refused, so a GUI that shows proves the cookie reached the container's user. Every daemon
(Xvfb, sshd) and file made here is removed, also when a test fails."""

from __future__ import annotations

import hashlib
import os
import pty
import secrets
import shlex
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_cli import read_until
from tests.lab import ros2_standin
from tests.lab.processes import stop_process

pytestmark = pytest.mark.lab
WINDOW = (40, 30, 200, 150)  # xlogo's geometry: x, y, width, height
SCREEN = (640, 480)
HISTORY = "/var/lib/isaac-deploy/history"


@dataclass
class Display:
    name: str  # ":97"
    folder: Path  # the fixture's scratch folder (root's, enterable)
    user_auth: Path  # the test user's authority file with the server's cookie


def wait_for(what: str, check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.1)


def free_display() -> int:
    for number in range(97, 80, -1):
        if not any(
            os.path.lexists(p) for p in (f"/tmp/.X{number}-lock", f"/tmp/.X11-unix/X{number}")
        ):
            return number
    raise AssertionError("no free X display number from :81 to :97")


@pytest.fixture(scope="module")
def scratch(lab) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="isaac-devbox-"))
    folder.chmod(0o755)  # the test user reads its own files here, sshd its authorized key
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def xserver(lab, scratch) -> Iterator[Display]:
    """Xvfb with authentication on; the test user gets the cookie in a file of its own."""
    user = lab["user"]
    number = free_display()
    name = f":{number}"
    made_sockets = not os.path.exists("/tmp/.X11-unix")
    cookie = secrets.token_hex(16)
    # the user's authority file in a folder of its own, as a session's is (xauth locks it there)
    user_folder = scratch / "x-user"
    user_folder.mkdir(mode=0o700)
    os.chown(user_folder, user["uid"], user["gid"])
    server_auth, user_auth = scratch / "server.auth", user_folder / "user.auth"
    for path in (server_auth, user_auth):
        subprocess.run(
            ["xauth", "-q", "-f", str(path), "add", name, "MIT-MAGIC-COOKIE-1", cookie],
            check=True,
            capture_output=True,
        )
        path.chmod(0o600)
    os.chown(user_auth, user["uid"], user["gid"])
    log = open(scratch / "xvfb.log", "wb")  # noqa: SIM115 - closed below
    xvfb = subprocess.Popen(
        ["Xvfb", name, "-auth", str(server_auth), "-screen", "0", "640x480x24", "-br"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        env = {**os.environ, "DISPLAY": name, "XAUTHORITY": str(server_auth)}
        wait_for(
            "Xvfb",
            lambda: subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode == 0,
        )
        yield Display(name, scratch, user_auth)
    finally:
        stop_process(xvfb.pid, "Xvfb")
        xvfb.wait(timeout=20)
        log.close()
        for path in (f"/tmp/.X{number}-lock", f"/tmp/.X11-unix/X{number}"):
            if os.path.lexists(path):
                os.unlink(path)
        if made_sockets and os.path.isdir("/tmp/.X11-unix"):
            os.rmdir("/tmp/.X11-unix")


@pytest.fixture(scope="module")
def sshd(lab, scratch, xserver) -> Iterator[list[str]]:
    """A real sshd with X11 forwarding on a loopback port for the test user, and the real ssh
    client's argv to reach it (``ssh -X``, host key checked, the test user's own key)."""
    user = lab["user"]
    keys = scratch / "ssh"
    keys.mkdir(mode=0o755)
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    os.chown(keys / "client", user["uid"], user["gid"])
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host_key = " ".join((keys / "host.pub").read_text().split()[:2])
    (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    (keys / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey {keys}/host
PidFile {keys}/sshd.pid
AuthorizedKeysFile {keys}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers {user["name"]}
X11Forwarding yes
X11UseLocalhost yes
X11DisplayOffset 10
XAuthLocation /usr/bin/xauth
PrintMotd no
StrictModes no
""")  # StrictModes no: the keys lie in a private folder under /tmp, which is world-writable
    # UsePAM no refuses a locked account (useradd's "!"): unlocked for the test, as before after
    shadow = subprocess.run(
        ["getent", "shadow", user["name"]], capture_output=True, text=True, check=True
    ).stdout.split(":")[1]
    made_run = not os.path.exists("/run/sshd")
    xauthority = Path(user["home"]) / ".Xauthority"
    had_xauthority = xauthority.exists()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    subprocess.run(["usermod", "-p", "*", user["name"]], check=True)
    daemon = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", str(keys / "sshd_config"), "-E", str(keys / "sshd.log")]
    )
    try:
        wait_for("sshd", lambda: (keys / "sshd.pid").exists())
        yield [
            "ssh",
            "-X",
            "-F",
            "none",
            "-i",
            str(keys / "client"),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={keys}/known_hosts",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            str(port),
            f"{user['name']}@127.0.0.1",
        ]
    finally:
        stop_process(daemon.pid, "sshd")
        daemon.wait(timeout=20)
        subprocess.run(["usermod", "-p", shadow, user["name"]], check=True)
        if not had_xauthority:
            xauthority.unlink(missing_ok=True)
        if made_run:
            shutil.rmtree("/run/sshd", ignore_errors=True)


@pytest.fixture(scope="module")
def project(user_project):
    """The lab member's project with ROS 2 middleware settings and a DDS profile file."""
    profile = user_project.path / "cyclonedds.xml"
    profile.write_text("<CycloneDDS><Domain><General/></Domain></CycloneDDS>\n")
    user = user_project.user
    os.chown(profile, user["uid"], user["gid"])
    user_project.data["isaac_ros2"] = {
        "rmw_implementation": "rmw_cyclonedds_cpp",
        "domain_id": 42,
        "dds_profile": str(profile),
    }
    inventory = user_project.path / "inventories" / "local.py"
    inventory.write_text(f"local = [('@local', {user_project.data!r})]\n")
    os.chown(inventory, user["uid"], user["gid"])
    result = user_project.deploy()
    assert result.rc == 0, result.out
    return user_project


def cli(project, *args: str) -> str:
    command = [str(project.venv_bin / "isaac-deploy"), *args]
    return " ".join(shlex.quote(a) for a in command)


def x_env(display: Display) -> dict[str, str]:
    return {"DISPLAY": display.name, "XAUTHORITY": str(display.user_auth), "TERM": "xterm-256color"}


# what each profile's X client shows: who it is, its cookie file, and that the server took it
PROBE = (
    'echo "id=$(id -u) display=$DISPLAY mitshm=$QT_X11_NO_MITSHM term=$TERM"; '
    'stat -c "cookie=%a:%u:%n" "$XAUTHORITY"; '
    'xdpyinfo | grep "^name of display"; '
    'echo "zone=$(sha256sum </etc/localtime)"'
)
PROFILES = {
    "user": [],
    "uid 2000": ["-u", "2000", "-g", "2000"],
    "rootless": ["--rootless"],
}


def check_probe(out: str, uid: int, display: str) -> None:
    assert f"id={uid} display={display} mitshm=1" in out, out
    assert f"cookie=600:{uid}:/run/isaac-deploy/x11/Xauthority.{uid}" in out, out
    assert f"name of display:    {display}" in out, out
    zone = hashlib.sha256(Path("/etc/localtime").read_bytes()).hexdigest()
    assert f"zone={zone}  -" in out, out  # the host's time zone


def screen_white(display: Display, area: tuple[int, int, int, int]) -> float:
    """The share of white pixels of the Xvfb screen in ``area`` (x, y, width, height), from a
    real screenshot (``xwd -root``; the X Window Dump format of X11's XWDFile.h)."""
    env = {**os.environ, "DISPLAY": display.name, "XAUTHORITY": str(display.folder / "server.auth")}
    dump = subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True, check=True)
    data = dump.stdout
    header = struct.unpack(">25I", data[:100])
    header_size, width, height = header[0], header[4], header[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = (
        header[7],
        header[11],
        header[12],
        header[19],
    )
    assert (width, height, bits_per_pixel) == (*SCREEN, 32), header
    pixels = data[header_size + 12 * ncolors :]
    fmt = ">I" if byte_order == 1 else "<I"
    x0, y0, w, h = area
    white = 0
    for y in range(y0, y0 + h):
        row = pixels[y * bytes_per_line : (y + 1) * bytes_per_line]
        for x in range(x0, x0 + w):
            (value,) = struct.unpack_from(fmt, row, 4 * x)
            white += (value & 0xFFFFFF) == 0xFFFFFF
    return white / (w * h)


def inside(window: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = window
    return (x + 10, y + 10, w - 20, h - 20)


def shows_window(display: Display, start: list[str], env: dict[str, str] | None = None) -> None:
    """Start xlogo through ``start`` (an argv), see its window on a screenshot, then end it."""
    assert screen_white(display, inside(WINDOW)) == 0  # -br: a black screen before
    client = subprocess.Popen(
        start,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for("xlogo's window", lambda: screen_white(display, inside(WINDOW)) > 0.5)
        assert screen_white(display, (400, 300, 200, 150)) == 0  # only where the window is
    finally:
        client.stdin.write(b"done\n")  # the container's shell ends xlogo
        client.stdin.close()
        out = client.stdout.read().decode(errors="replace")
        assert client.wait(timeout=30) == 0, out
    wait_for("xlogo's window to go", lambda: screen_white(display, inside(WINDOW)) == 0)


XLOGO = f"xlogo -geometry {WINDOW[2]}x{WINDOW[3]}+{WINDOW[0]}+{WINDOW[1]} & read line; kill $!"


def test_gui_on_the_local_display_for_every_profile(project, xserver):
    user = project.user
    refused = project.shell(
        "xdpyinfo >/dev/null", env={"DISPLAY": xserver.name, "XAUTHORITY": "/dev/null"}
    )
    assert refused.rc != 0  # authentication is on: no cookie, no display
    for profile, flags in PROFILES.items():
        result = project.shell(
            cli(project, "run", *flags, "sh", "-c", PROBE),
            env=x_env(xserver),
        )
        assert result.rc == 0 and "isaac-deploy:" not in result.out, f"{profile}: {result.out}"
        uid = {"user": user["uid"], "uid 2000": 2000, "rootless": 0}[profile]
        check_probe(result.out, uid, xserver.name)
        assert "term=xterm-256color" in result.out
    exports = f"export DISPLAY={xserver.name} XAUTHORITY={xserver.user_auth}; "
    where = f"cd {shlex.quote(str(project.path))} && "
    xlogo = exports + where + cli(project, "run", "sh", "-c", XLOGO)
    shows_window(xserver, ["su", "-", user["name"], "-c", xlogo])


def test_gui_through_ssh_x_for_every_profile(project, xserver, sshd):
    """A real ``ssh -X`` session: a TCP display (localhost:10.0) with the cookie sshd added."""
    where = f"cd {shlex.quote(str(project.path))} && "
    remote = where + " && ".join(
        cli(project, "run", *flags, "sh", "-c", PROBE) for flags in PROFILES.values()
    )
    env = x_env(xserver)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    ssh = " ".join(shlex.quote(a) for a in sshd)
    result = project.shell(f"{exports} {ssh} {shlex.quote(remote)}")
    assert result.rc == 0, result.out
    assert "display=localhost:10.0" in result.out, result.out
    user = project.user
    blocks = result.out.split("id=")[1:]
    assert len(blocks) == 3, result.out
    for block, uid in zip(blocks, (user["uid"], 2000, 0), strict=True):
        check_probe("id=" + block, uid, "localhost:10.0")
    xlogo = where + cli(project, "run", "sh", "-c", XLOGO)
    login = f"export {exports}; {ssh} {shlex.quote(xlogo)}"
    shows_window(xserver, ["su", "-", user["name"], "-c", login])


def test_no_display_adds_nothing_and_says_nothing(project):
    result = project.shell(
        "unset DISPLAY; "
        + cli(
            project,
            "run",
            "sh",
            "-c",
            'echo "[${DISPLAY-unset}] [${XAUTHORITY-unset}] [${QT_X11_NO_MITSHM-unset}]"; '
            "test ! -e /run/isaac-deploy/x11 && echo no-cookie-folder",
        )
    )
    assert result.rc == 0, result.out
    assert result.out.splitlines() == ["[unset] [unset] [unset]", "no-cookie-folder"], result.out


def test_x11_off_passes_no_display(project, xserver):
    result = project.shell(
        cli(project, "--data", "isaac_x11=false", "run", "sh", "-c", 'echo "[$DISPLAY]"'),
        env=x_env(xserver),
    )
    assert result.rc == 0 and result.out.splitlines() == ["[]"], result.out


def test_ros2_in_run_with_the_inventorys_middleware(project):
    base = project.data["isaac_base_images"]["ext-dev"]
    lacking = subprocess.run(
        ["docker", "run", "--rm", base, "sh", "-c", "test ! -e /opt/ros && echo no-ros"],
        capture_output=True,
        text=True,
    )
    assert lacking.stdout.strip() == "no-ros"  # the layer was added on top of a base lacking it
    result = project.shell(cli(project, "run", "ros2", "doctor", "--report"))
    assert result.rc == 0, result.out
    assert "distribution name    : humble" in result.out
    assert "middleware name      : rmw_cyclonedds_cpp" in result.out
    assert "ROS_DOMAIN_ID        : 42" in result.out
    installed = project.shell(
        cli(
            project,
            "run",
            "sh",
            "-c",
            "dpkg-query -W -f '${Package} ${Status}\\n' ros-humble-ros-base; "
            'cat "${CYCLONEDDS_URI#file://}"',
        )
    )
    assert "ros-humble-ros-base install ok installed" in installed.out, installed.out
    assert "<CycloneDDS>" in installed.out  # the DDS profile file, read-only in the container
    rootless = project.shell(cli(project, "run", "--rootless", "ros2", "pkg", "prefix", "rclpy"))
    assert rootless.rc == 0 and rootless.out.strip() == ros2_standin.PREFIX, rootless.out


def layer(project, image: str, env: dict[str, str], script: str, *flags: str):
    """``script`` as root in ``image``, with the dev image's ROS 2 layer (the project's copy)
    at ``/layer.sh``."""
    argv = ["docker", "run", "--rm", *flags, "--user", "0:0", "--entrypoint", "sh"]
    argv += ["-v", f"{project.path / 'docker' / 'install-ros2.sh'}:/layer.sh:ro"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    return subprocess.run([*argv, image, "-c", script], capture_output=True, text=True)


def test_ros2_layer_off_present_or_out_of_reach(project):
    base = project.data["isaac_base_images"]["ext-dev"]
    humble = {"ROS_DISTRO": "humble", "ROS_INSTALL": "1"}
    then_none = "/layer.sh; code=$?; test ! -e /opt/ros && echo none; exit $code"
    off = layer(project, base, {**humble, "ROS_INSTALL": ""}, then_none)
    assert off.returncode == 0 and "the ROS 2 layer is off" in off.stdout, off.stdout + off.stderr
    assert off.stdout.strip().endswith("none")
    present = layer(project, project.config.image_name("ext-dev"), humble, "/layer.sh")
    assert present.returncode == 0 and "is in the base image" in present.stdout, present.stderr
    # a base whose apt sources offer no ROS 2 (the stand-in's taken away), built without
    # network: ROS's own source is tried, and the build stops with one line
    ros = {
        "ROS_APT_PACKAGES": "ros-humble-ros-base",
        "ROS_APT_SOURCE": "http://packages.ros.org/ros2/ubuntu",
        "ROS_APT_KEY_URL": "https://raw.githubusercontent.com/ros/rosdistro/master/ros.key",
    }
    script = f"rm {ros2_standin.SOURCE_LIST}; {then_none}"
    unreachable = layer(project, base, {**humble, **ros}, script, "--network", "none")
    out = unreachable.stdout + unreachable.stderr
    assert unreachable.returncode == 1, out
    assert "adding ROS's apt source http://packages.ros.org/ros2/ubuntu (bookworm)" in out
    errors = [line for line in unreachable.stderr.splitlines() if "ROS 2 layer" in line]
    assert len(errors) == 1 and errors[0].startswith("isaac-deploy: ROS 2 layer: curl is needed")
    assert unreachable.stdout.strip().endswith("none")


def test_ros2_in_an_attached_shell(project):
    assert project.shell(cli(project, "run", "true")).rc == 0
    pid, fd = pty.fork()
    if pid == 0:
        shell = f"cd {shlex.quote(str(project.path))} && " + cli(project, "attach")
        os.execvp("su", ["su", "-", project.user["name"], "-c", shell])
    try:
        read_until(fd, "detach with Ctrl-p Ctrl-q")
        time.sleep(0.5)
        os.write(fd, b"echo ros=$(ros2 pkg prefix ros2cli)-$ROS_DOMAIN_ID-$((6*7))\n")
        read_until(fd, f"ros={ros2_standin.PREFIX}-42-42")
        os.write(fd, b"\x10\x11")  # detach, the container keeps running
    finally:
        os.waitpid(pid, 0)
        os.close(fd)


def test_history_survives_stop_and_run(project):
    marker = f"echo history-{secrets.token_hex(4)}"
    typed = project.shell(
        f"printf '%s\\nexit\\n' {shlex.quote(marker)} | " + cli(project, "run", "bash", "-i")
    )
    assert typed.rc == 0, typed.out
    assert project.shell(cli(project, "stop")).rc == 0
    uid = project.user["uid"]
    result = project.shell(cli(project, "run", "cat", f"{HISTORY}/bash_history.{uid}"))
    assert result.rc == 0 and marker in result.out.splitlines(), result.out
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q"], capture_output=True, text=True
    ).stdout.split()
    assert f"{project.config.compose_project}_user-history" in volumes
    # root's shells in the rootless profile keep theirs apart
    rootless = project.shell(cli(project, "run", "--rootless", "sh", "-c", f"ls {HISTORY}"))
    assert rootless.rc == 0 and f"bash_history.{uid}" not in rootless.out, rootless.out


def test_a_missing_dds_profile_is_one_line_and_changes_nothing(project):
    before = project.override_file.read_text()
    missing = str(project.path / "no-such-profile.xml")
    ros2 = {**project.data["isaac_ros2"], "dds_profile": missing}
    result = project.deploy(data={"isaac_ros2": ros2})
    assert result.rc != 0
    errors = [line for line in result.out.splitlines() if "isaac_ros2[dds_profile]" in line]
    assert len(errors) == 1 and f"{missing} is not a file on the target" in errors[0], result.out
    assert project.override_file.read_text() == before
