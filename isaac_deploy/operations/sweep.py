"""Operation: a sweep (job array) submitted exactly once, with a ledger line per element.

The array job is submitted as any job (:func:`job_submitted`: check, pending record, submission
and record under the ledger's lock, once per sweep run key). Then, under the same lock, each
element gets its own line (its run key ``<sweep>.<index>``, its exact arguments and its job id:
Slurm's ``<array id>_<index>``, PBS's ``<id>[<index>].<server>``) for each job of the sweep that
lacks it: a roll-out cut off between the two steps is completed by the next one, and a line is
never written twice.
"""

from __future__ import annotations

from dataclasses import replace

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from isaac_deploy.facts.ledger import LedgerEntries
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.ledger import Entry, check_run_key, submitted
from isaac_deploy.model.sweep import element_ids
from isaac_deploy.operations.scheduler import LOCK_WAIT, job_submitted

# $1 ledger, $2 sweep run key, $3 scheduler, then one pending line per element, in index order
ELEMENTS = r"""set -f
ledger=$1 key=$2 scheduler=$3
shift 3
run_re="\"run_key\"[[:space:]]*:[[:space:]]*\"$(printf '%s' "$key" | sed 's/[.]/[.]/g')\""
id_re='"job_id"[[:space:]]*:[[:space:]]*"[^"]+"'
ids=$(grep -E -e "$run_re" -- "$ledger" 2>/dev/null | grep -E '^[{].*[}]$' |
  grep -Eo -e "$id_re" | sed 's/.*"\([^"]*\)"$/\1/')
for id in $ids; do
  index=0
  for line in "$@"; do
    case $scheduler in
      pbs) element="${id%%\[\]*}[$index]${id#*\[\]}" ;;
      *) element="${id}_$index" ;;
    esac
    if ! grep -Fq -e "\"job_id\": \"$element\"" -- "$ledger"; then
      printf '%s\n' "$line" | LC_ALL=C sed \
        -e "s/\"job_id\"[[:space:]]*:[[:space:]]*\"\"/\"job_id\": \"$element\"/" >> "$ledger" || {
        echo "error: the ledger $ledger cannot be written: run again to record the elements" >&2
        exit 1
      }
      echo "recorded element $index of sweep $key: job $element"
    fi
    index=$((index + 1))
  done
done
"""


@operation()
def sweep_submitted(
    entry: Entry,
    elements: tuple[Entry, ...],
    script: str,
    ledger: str,
    resubmit: bool = False,
    directories: tuple = (),
):
    """Submit the job array ``script`` once for the sweep ``entry.run_key`` (as
    :func:`job_submitted`), then write a ledger line for each of ``elements`` and each job of
    the sweep that has none yet.

    + entry: the sweep's own ledger entry (its job is the array job)
    + elements: one entry per array index, in order (run key ``<sweep>.<index>``, the element's
      arguments; the job id is filled in from the sweep's)
    + script: the rendered job array script
    + ledger: absolute path of the ledger on the login node (locked with ``<ledger>.lock``)
    + resubmit: submit the sweep again even when it was submitted before
    + directories: folders that must exist at submission

    **Example:**

    .. code:: python

        sweep.sweep_submitted(
            name="euler: sweep lr (4 runs)",
            entry=Entry(run_key="lr", job_id="", scheduler="slurm", job_name="ext.lr.2026"),
            elements=tuple(
                Entry(run_key=f"lr.{i}", job_id="", scheduler="slurm", args=("--seed", str(i)))
                for i in range(4)
            ),
            script=render_job(templates, cluster, job),
            ledger="/cluster/home/jdoe/.isaac-deploy/ext_template-ledger.jsonl",
        )
    """
    check_run_key(entry.run_key)
    for index, element in enumerate(elements):
        if check_run_key(element.run_key) != f"{entry.run_key}.{index}":
            raise ConfigError("sweep", f"element {index} has run key {element.run_key}")
    entries = host.get_fact(LedgerEntries, path=ledger).entries
    jobs = [e.job_id for e in submitted(entries, entry.run_key)]
    recorded = {e.job_id for e in entries if e.job_id}
    missing = [
        job for job in jobs if not set(element_ids(job, entry.scheduler, len(elements))) <= recorded
    ]
    yield from job_submitted._inner(
        entry=entry, script=script, ledger=ledger, resubmit=resubmit, directories=directories
    )
    if jobs and not missing and not resubmit:
        return  # submitted, and every element recorded
    lines = [replace(element, job_id="", status="submitted").to_json() for element in elements]
    lock = f"{ledger}.lock"
    busy = (
        f"error: another roll-out held {lock} for {LOCK_WAIT} s: run again to record the elements"
    )
    yield StringCommand(
        "flock -E 75 -w",
        str(LOCK_WAIT),
        QuoteString(lock),
        "sh -c",
        QuoteString(ELEMENTS),
        "sh",
        QuoteString(ledger),
        QuoteString(entry.run_key),
        QuoteString(entry.scheduler),
        *(QuoteString(line) for line in lines),
        "|| { rc=$?; [ $rc != 75 ] || echo",
        QuoteString(busy),
        ">&2; exit $rc; }",
    )
