"""Large-file delivery: the fact run here on real folders, and the operation's decisions."""

from __future__ import annotations

import hashlib
import shlex
import subprocess

from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.delivery import DeliveredFile, Delivery
from isaac_deploy.facts.files import FileDigest
from isaac_deploy.operations.cluster_image import sif_pulled
from isaac_deploy.operations.delivery import file_delivered
from tests.helpers import run_op


def fact(folder, name):
    command = DeliveredFile().command(str(folder), name).get_raw_value()
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    return DeliveredFile().process(out.splitlines())


def test_fact_on_real_folders(tmp_path):
    missing = fact(tmp_path / "not" / "yet", "img.sif")
    assert not missing.present and missing.partial_bytes == 0 and missing.free_kib > 0
    (tmp_path / ".incoming").mkdir()
    (tmp_path / ".incoming" / "img.sif").write_bytes(b"x" * 1000)
    assert fact(tmp_path, "img.sif").partial_bytes == 1000
    (tmp_path / "img.sif").write_bytes(b"data")
    (tmp_path / "img.sif.sha256").write_text(hashlib.sha256(b"data").hexdigest() + "\n")
    done = fact(tmp_path, "img.sif")
    assert done.present and done.sha256 == hashlib.sha256(b"data").hexdigest()


def test_present_and_verified_sends_nothing(tmp_path):
    local = tmp_path / "img.sif"
    local.write_bytes(b"data")
    sha = hashlib.sha256(b"data").hexdigest()
    commands, host = run_op(
        file_delivered,
        {"DeliveredFile": {"filename=img.sif, folder=/img": Delivery(True, sha, 0, 10**6)}},
        local_path=str(local),
        sha256=sha,
        folder="/img",
        filename="img.sif",
    )
    assert commands == [] and host.noops == ["img.sif is present and verified"]


def test_no_space_refused_before_sending(tmp_path):
    local = tmp_path / "img.sif"
    local.write_bytes(b"x" * 4096)
    commands, _ = run_op(
        file_delivered,
        {"DeliveredFile": {"filename=img.sif, folder=/img": Delivery(False, None, 0, 100)}},
        local_path=str(local),
        sha256="0" * 64,
        folder="/img",
        filename="img.sif",
    )
    assert (
        len(commands) == 1
        and "not enough space in /img" in commands[0]
        and commands[0].endswith("exit 1")
    )


def test_sends_to_incoming_then_verifies_and_renames(tmp_path):
    local = tmp_path / "img.sif"
    local.write_bytes(b"x")
    commands, _ = run_op(
        file_delivered,
        {"DeliveredFile": {"filename=img.sif, folder=/img": Delivery(False, None, 0, 10**6)}},
        local_path=str(local),
        sha256="a" * 64,
        folder="/img",
        filename="img.sif",
    )
    assert commands[0] == "mkdir -p /img/.incoming"
    assert (
        "sha256sum -c --status" in commands[2] and "mv -f .incoming/img.sif img.sif" in commands[2]
    )


def test_apptainer_build_command_lines():
    from isaac_deploy.operations.cluster_image import build_command

    source = "docker-daemon://isaac-lab-ext:alice"
    assert build_command(source, "/c/.x.partial").get_raw_value() == (
        "apptainer build --force /c/.x.partial docker-daemon://isaac-lab-ext:alice"
    )
    assert "--sandbox" in build_command("docker://r/i:t", "/c/dir", sandbox=True).get_raw_value()
    assert build_command(
        "docker://127.0.0.1:5000/i:t", "o.sif", plain_http=True
    ).get_raw_value() == ("apptainer build --force --nohttps o.sif docker://127.0.0.1:5000/i:t")


REF = "reg.example.org/robotics/isaac-lab-ext:sha256-" + "ab" * 32
CREDENTIALS = "/home/u/.config/isaac-deploy/registries/lab.env"
STAGED = "/home/u/.config/isaac-deploy/registries/.lab.env.isaac-deploy.tmp"
LOGIN = "APPTAINER_DOCKER_USERNAME='robot'\nAPPTAINER_DOCKER_PASSWORD='n3w pass'\n"
NOT_BUILT = {"DeliveredFile": {"filename=s.sif, folder=/img dir": Delivery(False, None, 0, 10**6)}}
PULL = dict(
    reference=REF,
    folder="/img dir",
    filename="s.sif",
    cache_dir="/scratch/u/cache",
    credentials=HiddenValue(LOGIN),
    credentials_file=CREDENTIALS,
)
# how a login node's Apptainer commands start: its login environment, the cache under cache_dir
LOGIN_ENV = [
    "set -e",
    "export APPTAINER_CACHEDIR=/scratch/u/cache/apptainer",
    "export APPTAINER_TMPDIR=/scratch/u/cache/apptainer/tmp",
]
MADE = 'mkdir -p "$APPTAINER_CACHEDIR" "$APPTAINER_TMPDIR" && '


def login_script(command: str) -> list[str]:
    """The lines of a ``bash -lc SCRIPT`` command's script."""
    argv = shlex.split(command)
    assert argv[:2] == ["bash", "-lc"] and len(argv) == 3, command
    return argv[2].splitlines()


def saved_credentials(text: str) -> dict:
    digest = FileDigest(0o600, 1000, hashlib.sha256(text.encode()).hexdigest())
    return {"FileSha256WithMode": {f"path={CREDENTIALS}": digest}}


def test_login_node_builds_from_the_registry_with_its_saved_credentials():
    commands, _ = run_op(sif_pulled, {**NOT_BUILT, **saved_credentials(LOGIN)}, **PULL)
    assert commands[0] == "mkdir -p '/img dir/.incoming'"
    assert login_script(commands[1]) == [
        *LOGIN_ENV,
        f"{MADE}cd '/img dir' && ( set -a && . {CREDENTIALS} && set +a"
        f" && apptainer build --force .incoming/s.sif docker://{REF} )",
    ]
    assert "mv -f .incoming/s.sif s.sif" in commands[2] and "s.sif.sha256" in commands[2]
    assert len(commands) == 3
    # no credentials of ours (the login node's own login): nothing is looked at or sourced;
    # Apptainer from a module, or at a path of the site's
    own = {
        **PULL,
        "credentials": None,
        "credentials_file": None,
        "modules": ("apptainer/1.3.4", "squashfs"),
        "apptainer": "$APPS/apptainer/bin/apptainer",
    }
    commands, _ = run_op(sif_pulled, NOT_BUILT, **own)
    assert login_script(commands[1]) == [
        "set -e",
        "module load apptainer/1.3.4",
        "module load squashfs",
        *LOGIN_ENV[1:],
        f"{MADE}cd '/img dir' && ( \"${{APPS}}\"/apptainer/bin/apptainer build --force "
        f".incoming/s.sif docker://{REF} )",
    ]
    # present: nothing is built, the saved credentials are not even looked at
    present = {"DeliveredFile": {"filename=s.sif, folder=/img": Delivery(True, "c" * 64, 0, 10**6)}}
    commands, host = run_op(sif_pulled, present, **{**PULL, "folder": "/img"})
    assert commands == [] and host.noops == ["s.sif is present"]


def test_new_credentials_replace_the_saved_ones_only_after_the_build_worked():
    commands, _ = run_op(sif_pulled, {**NOT_BUILT, **saved_credentials("OLD=1\n")}, **PULL)
    assert commands == [
        "mkdir -p -m 700 /home/u/.config/isaac-deploy/registries",
        f"rm -f {STAGED} && ( umask 077 && : > {STAGED} )",
        ("upload", STAGED, LOGIN),
        "mkdir -p '/img dir/.incoming'",
        commands[4],
        f"chmod 600 {STAGED} && mv -f {STAGED} {CREDENTIALS}",
        commands[-1],
    ]
    build, _, dropped = commands[4].rpartition(" || ")
    assert dropped == f"{{ rm -f {STAGED} ; exit 1; }}"
    assert login_script(build)[-1] == (
        f"{MADE}cd '/img dir' && ( set -a && . {STAGED} && set +a"
        f" && apptainer build --force .incoming/s.sif docker://{REF} )"
    )
    assert "mv -f .incoming/s.sif s.sif" in commands[-1]
    assert not any("n3w pass" in c for c in commands if isinstance(c, str))


def test_cached_sif_fact_parsing():
    import json

    from isaac_deploy.facts.sif import CachedSif
    from isaac_deploy.model.images import sif_name

    image = "sha256:" + "ab" * 32
    found = [
        json.dumps({"local": {"id": image}, "tags": []}),
        "@@cache",
        f"{sif_name(image)} {'c' * 64}",
        "sha256-old.sif " + "d" * 64,
    ]
    state = CachedSif().process(found)
    assert state.image_id == image and state.sif == sif_name(image) and state.sha256 == "c" * 64
    fresh = CachedSif().process([json.dumps({"local": {"id": image}, "tags": []}), "@@cache"])
    assert fresh.sif is None and fresh.image_error is None
    missing = CachedSif().process([json.dumps({"local": {"missing": True}, "tags": []}), "@@cache"])
    assert missing.image_error == "missing"


def test_image_built_later_in_the_deploy_is_planned_then_decided_when_run(tmp_path):
    """Change detection (pyinfra without -y, --dry) runs before the workstation built the SIF."""
    local = tmp_path / "img.sif"
    args = dict(local_path=str(local), sha256=None, folder="/img", filename="img.sif")
    facts = {"DeliveredFile": {"filename=img.sif, folder=/img": Delivery(False, None, 0, 10**6)}}
    planned, _ = run_op(file_delivered, facts, executing=False, **args)
    assert len(planned) == 1 and planned[0].startswith("RsyncCommand(")
    failed, _ = run_op(file_delivered, facts, **args)  # executing, and still not built
    assert failed == [f"echo 'error: {local} was not built (no {local}.sha256)' >&2; exit 1"]
    local.write_bytes(b"sif")
    (tmp_path / "img.sif.sha256").write_text("a" * 64 + "\n")
    commands, _ = run_op(file_delivered, facts, **args)
    assert len(commands) == 3 and "a" * 64 in commands[2]


def test_images_pruned_keeps_retention_active_jobs_and_other_projects_images():
    import time

    from isaac_deploy.facts.scheduler import JobState
    from isaac_deploy.model.ledger import Entry, Ledger
    from isaac_deploy.operations.delivery import images_pruned

    now = int(time.time())
    states = {"1": JobState("1", "COMPLETED", 0), "2": JobState("2", "RUNNING")}
    facts = {
        "StoredFiles": {
            "folder=/img dir, suffix=.sif": [
                ("foreign.sif", now - 9000),
                ("sha256-a.sif", now - 8000),
                ("sha256-b.sif", now - 7000),
                ("sha256-c.sif", now - 6000),
                (".incoming/sha256-d.sif", now - 2 * 86400),
                (".incoming/sha256-e.sif", now - 60),
                ("sha256-cur.sif", now),
            ]
        },
        "LedgerEntries": {
            "path=/l": Ledger(
                (
                    Entry(run_key="a", job_id="1", scheduler="slurm", image="sha256:a"),
                    Entry(run_key="b", job_id="2", scheduler="slurm", image="sha256:b"),
                    Entry(run_key="c", job_id="3", scheduler="slurm", image="sha256:c"),
                )
            )
        },
        "JobStates": {"job_ids=('1', '2'), scheduler=slurm": states},
        "ActiveJobs": {"scheduler=slurm": {"2": "ext.b", "5": "other.x"}},
    }
    commands, host = run_op(
        images_pruned,
        facts,
        folder="/img dir",
        keep=2,
        current="sha256-cur.sif",
        ledger="/l",
        scheduler="slurm",
        extension="ext",
    )
    # a: ended, beyond retention; b: running; c: kept by retention; foreign: not this project's;
    # the partial upload from two days ago goes, the one from a minute ago stays
    assert commands == [
        "cd '/img dir' && rm -rf -- .incoming/sha256-d.sif sha256-a.sif sha256-a.sif.sha256"
        " sha256-a.sandbox"
    ]
    assert host.noops == ["kept image sha256-b.sif: job 2 is RUNNING"]
    # keep=1: job 3's image is a candidate too, so the scheduler is asked about it as well
    facts["JobStates"] = {"job_ids=('1', '2', '3'), scheduler=slurm": states}
    facts["ActiveJobs"] = {"scheduler=slurm": None}  # the scheduler cannot be asked: no image goes
    commands, host = run_op(
        images_pruned,
        facts,
        folder="/img dir",
        keep=1,
        current="sha256-cur.sif",
        ledger="/l",
        scheduler="slurm",
        extension="ext",
    )
    assert commands == ["cd '/img dir' && rm -rf -- .incoming/sha256-d.sif"]


def test_sandbox_is_unpacked_from_the_sif_under_incoming_then_renamed():
    from isaac_deploy.operations.cluster_image import sandbox_built

    facts = {"PathKinds": {"paths=['/img dir/sha256-a.sandbox']": {}}}
    commands, _ = run_op(
        sandbox_built, facts, folder="/img dir", sif="sha256-a.sif", cache_dir="/scratch/u/cache"
    )
    [command] = commands
    assert login_script(command) == [
        *LOGIN_ENV,
        f"{MADE}cd '/img dir' && mkdir -p .incoming && rm -rf .incoming/sha256-a.sandbox && "
        "apptainer build --force --sandbox .incoming/sha256-a.sandbox sha256-a.sif && mv "
        ".incoming/sha256-a.sandbox sha256-a.sandbox",
    ]
    commands, host = run_op(
        sandbox_built,
        {
            "PathKinds": {
                "paths=['/img dir/sha256-a.sandbox']": {"/img dir/sha256-a.sandbox": "dir"}
            }
        },
        folder="/img dir",
        sif="sha256-a.sif",
        cache_dir="/scratch/u/cache",
    )
    assert commands == [] and host.noops == ["sha256-a.sandbox is unpacked"]


def test_no_image_goes_while_a_job_of_the_extension_is_unknown_to_the_ledger():
    """Ledger or not: a queued job of this extension (its job name) that no ledger record
    names may use any of the images, so none goes; a job the ledger names keeps only its own."""
    import time

    from isaac_deploy.model.ledger import Entry, Ledger
    from isaac_deploy.operations.delivery import images_pruned

    now = int(time.time())
    pending = Entry(
        run_key="b",
        job_id="",
        scheduler="slurm",
        image="sha256:b",
        job_name="ext.b",
        status="pending",
    )
    facts = {
        "StoredFiles": {
            "folder=/img, suffix=.sif": [
                ("sha256-a.sif", now - 8000),
                ("sha256-b.sif", now - 7000),
                ("sha256-cur.sif", now),
            ]
        },
        "LedgerEntries": {
            "path=/l": Ledger(
                (Entry(run_key="a", job_id="1", scheduler="slurm", image="sha256:a"), pending)
            )
        },
        "JobStates": {"job_ids=('1',), scheduler=slurm": {}},
        "ActiveJobs": {"scheduler=slurm": {"7": "ext.b"}},
    }
    prune = dict(folder="/img", keep=1, current="sha256-cur.sif", ledger="/l", scheduler="slurm")
    commands, host = run_op(images_pruned, facts, **prune, extension="ext")
    assert commands == ["cd /img && rm -rf -- sha256-a.sif sha256-a.sif.sha256 sha256-a.sandbox"]
    assert host.noops == ["kept image sha256-b.sif: job 7 (ext.b) is queued or running"]
    facts["ActiveJobs"] = {"scheduler=slurm": {"7": "ext.b", "8": "ext.lost", "9": "other.x"}}
    commands, host = run_op(images_pruned, facts, **prune, extension="ext")
    assert commands == []
    assert host.noops == [
        "kept image sha256-a.sif: job 8 (ext.lost) is queued or running and not in the ledger",
        "kept image sha256-b.sif: job 7 (ext.b) is queued or running",
    ]


def test_login_node_builds_run_in_the_login_environment_with_the_modules(tmp_path):
    """The build command run for real by bash: the login profile (here a home's .bash_profile,
    as a site's profile defines `module`) is read, the module puts the site's apptainer on
    PATH, Apptainer's cache and temporary folders are made under the cache dir; a module that
    does not load stops the build."""
    from isaac_deploy.operations.cluster_image import build_command, on_login_node

    home, site = tmp_path / "home", tmp_path / "site" / "bin"
    home.mkdir()
    site.mkdir(parents=True)
    (site / "apptainer").write_text(
        '#!/bin/sh\necho "apptainer $* cache=$APPTAINER_CACHEDIR tmp=$APPTAINER_TMPDIR"\n'
        '[ -d "$APPTAINER_TMPDIR" ] && echo tmp-exists\n'
    )
    (site / "apptainer").chmod(0o755)
    (home / ".bash_profile").write_text(
        "module() { case $2 in apptainer/*) PATH=" + str(site) + ":$PATH;; *) return 1;; esac; }\n"
    )
    cache = tmp_path / "cache dir"
    build = build_command("docker://r/i:t", "o.sif")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}

    def run(modules):
        command = on_login_node(build, modules, str(cache))
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env)

    done = run(("apptainer/1.3.4",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"apptainer build --force o.sif docker://r/i:t cache={cache}/apptainer "
        f"tmp={cache}/apptainer/tmp",
        "tmp-exists",
    ]
    assert run(("nope/1",)).returncode != 0 and run(()).returncode != 0  # no apptainer on PATH
