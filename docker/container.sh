#!/usr/bin/env bash
# container.sh [-p ext|ext-dev] COMMAND [ARGS...]: the seed's interface, forwarded unchanged to
# `isaac-deploy` (build, run, attach, exec, logs, ps, stop, mount-*, doctor; see --help).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cli="$here/../.venv/bin/isaac-deploy"
if [ ! -x "$cli" ]; then
    cli=$(command -v isaac-deploy) || { echo "container.sh: isaac-deploy is not installed: run ./dev-setup.sh" >&2; exit 1; }
fi
exec "$cli" "$@"
