"""The lab's PyPI stand-in for its PCs, which reach no package index: a wheelhouse of what
``./dev-setup.sh`` pip-installs (isaac-deploy's dependencies and its build backend), made once
with pip on this host (PyPI) for this host's Python, which is the PCs' (both Debian's), and a
``/etc/pip.conf`` that installs from it only, as a lab's own index (a devpi, a proxy) would be
set on its machines. Not emulated: an index served over HTTP(S), and its login."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from . import lab

ROOT = Path(__file__).resolve().parents[2]

WHEELS_MOUNT = "/srv/lab-pypi"
BUILD_BACKEND = ("setuptools>=61", "wheel")  # pyproject.toml's build-system, for `pip install -e`
PIP_CONF = f"""# The lab's PyPI stand-in (tests/lab/pypi.py): this PC reaches no index, pip installs from the
# lab's wheelhouse only
[global]
no-index = true
find-links = {WHEELS_MOUNT}
"""


def wheelhouse() -> tuple[Path, Path]:
    """``(folder of wheels, pip.conf)``, made once and cached by this checkout's
    ``pyproject.toml`` and this Python."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    key = hashlib.sha256(pyproject + sys.version.encode()).hexdigest()[:12]
    base = lab.CACHE_DIR / f"lab-pc-pypi-{key}"
    if (base / "pip.conf").is_file():
        return base / "wheels", base / "pip.conf"
    lab.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = base.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    lab.log("PCs: making the lab's PyPI stand-in (pip wheel; once)")
    lab.run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--disable-pip-version-check",
        "--wheel-dir",
        str(partial / "wheels"),
        str(ROOT),
        *BUILD_BACKEND,
        capture_output=True,
    )
    for own in (partial / "wheels").glob("isaac_deploy-*.whl"):
        own.unlink()  # the user installs their checkout, never a wheel of the lab's
    (partial / "pip.conf").write_text(PIP_CONF)
    for path in (partial, partial / "wheels"):
        path.chmod(0o755)
    partial.rename(base)
    names = sorted(wheel.name for wheel in (base / "wheels").iterdir())
    lab.log(f"PCs: the lab's PyPI stand-in has {len(names)} wheels: {base}")
    return base / "wheels", base / "pip.conf"
