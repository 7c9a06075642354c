#!/bin/sh
# install-extension.sh FOLDER: installs the extension package at FOLDER (source/<extension> in
# the image) into Isaac Lab's Python while an isaac-deploy image is built (as root), as Isaac
# Lab's own tooling does for its extensions:
#   1. the apt packages listed as apt_deps in FOLDER/config/extension.toml ([isaac_lab_settings],
#      the key Isaac Lab's tools/install_deps.py reads, or [isaaclab_settings], the extension
#      template's), those not installed yet;
#   2. the package itself, editable, WITH its dependencies (setup.py's INSTALL_REQUIRES,
#      pyproject.toml's [project] dependencies) and with build isolation, so that what its build
#      backend imports (the template's setup.py: `import toml`) comes from its build-system
#      requirements; setup.py reads config/extension.toml next to it, as the template expects.
# Any failure stops the build with one line saying what failed; nothing is skipped silently.
set -eu
folder=$1
isaaclab="${DOCKER_ISAACLAB_PATH:?}/isaaclab.sh"  # -p: Isaac Lab's python, as its docs install
python="${DOCKER_ISAACSIM_ROOT_PATH:?}/python.sh"  # the same, printing nothing of its own
fail() {
    echo "isaac-deploy: $*" >&2
    exit 1
}

[ -f "$folder/setup.py" ] || [ -f "$folder/pyproject.toml" ] \
    || fail "$folder has neither setup.py nor pyproject.toml: the extension cannot be installed"

toml="$folder/config/extension.toml"
if [ -f "$toml" ] && grep -q apt_deps "$toml"; then
    # one package name a line; a value that is not a package name stops the build
    deps=$("$python" -c '
import re, sys
try:
    import tomllib as reader
    mode = "rb"
except ImportError:
    import toml as reader
    mode = "r"
with open(sys.argv[1], mode) as handle:
    data = reader.load(handle)
deps = []
for section in ("isaac_lab_settings", "isaaclab_settings"):
    deps += (data.get(section) or {}).get("apt_deps") or []
bad = [d for d in deps if not isinstance(d, str) or not re.fullmatch(r"[a-z0-9][a-z0-9+.:=~-]*", d)]
if bad:
    sys.exit("apt_deps: not apt package names: %r" % bad)
print("\n".join(dict.fromkeys(deps)))
' "$toml") || fail "cannot read the apt_deps of $toml (see above)"
    missing=""
    for dep in $deps; do
        status=$(dpkg-query -W -f='${Status}' "${dep%%=*}" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing="$missing $dep"
    done
    if [ -n "$missing" ]; then
        echo "isaac-deploy: installing the apt_deps of $toml:$missing"
        # shellcheck disable=SC2086 # one word per package name (checked above)
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; } \
            || fail "installing the apt_deps of $toml ($missing ) failed: see apt-get's output above"
        rm -rf /var/lib/apt/lists/*
    fi
fi

"$isaaclab" -p -m pip install --no-cache-dir --editable "$folder" \
    || fail "installing the extension $folder with its dependencies (INSTALL_REQUIRES, pyproject.toml) failed: see pip's output above (a requirement the package index does not have? a build requirement missing from pyproject.toml's [build-system]?)"
