"""A build on a login node, measured: runs a shell command and prints, after its own output, one
line ``@@measured {json}`` with its wall and CPU seconds (its processes'), the bytes that
arrived in Apptainer's layer cache meanwhile (``$APPTAINER_CACHEDIR/cache/blob``, else
``~/.apptainer/cache/blob``: the layers it pulled) and the size of the file it built. Exits with
the command's exit code."""

import json
import os
import resource
import subprocess
import sys
import time

MARKER = "@@measured"


def blob_bytes(folder):
    """The bytes of the files below ``folder`` (0 when there is none)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def blob_folder():
    """Apptainer's OCI blob cache for this environment."""
    parent = os.environ.get("APPTAINER_CACHEDIR") or os.path.join(
        os.path.expanduser("~"), ".apptainer", "cache"
    )
    return os.path.join(parent, "cache", "blob")


def measured(command, built):
    """Run ``command`` with ``sh -c``; its exit code and the measures (``built``: the file it
    makes)."""
    folder = blob_folder()
    before, started = blob_bytes(folder), time.monotonic()
    code = subprocess.call(["sh", "-c", command])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return code, {
        "seconds": round(time.monotonic() - started, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "pulled_bytes": max(0, blob_bytes(folder) - before),
        "built_bytes": os.path.getsize(built) if os.path.isfile(built) else 0,
    }


if __name__ == "__main__":
    CODE, MEASURES = measured(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    print(MARKER, json.dumps(MEASURES))
    sys.exit(CODE)
