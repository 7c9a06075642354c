#!/usr/bin/env bash
# run_dev.sh [--rootless] [--fix-perms] [-u|--uid UID] [-g|--gid GID] [command...]: the seed's
# interface, forwarded to `isaac-deploy run-dev`; the command runs with its arguments exactly as
# given and its exit code is this script's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cli="$here/../.venv/bin/isaac-deploy"
if [ ! -x "$cli" ]; then
    cli=$(command -v isaac-deploy) || { echo "run_dev.sh: isaac-deploy is not installed: run ./dev-setup.sh" >&2; exit 1; }
fi
exec "$cli" run-dev "$@"
