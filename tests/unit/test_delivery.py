"""Large-file delivery: the fact run here on real folders, and the operation's decisions."""

from __future__ import annotations

import hashlib
import shlex
import subprocess

from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.delivery import DeliveredFile, Delivery, Stored, StoredFiles
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
    assert done.basis is None and done.kept_bytes == 0


def test_the_basis_is_the_newest_other_complete_file_of_its_kind(tmp_path):
    import os

    for name, age in (("a.sif", 300), ("b.sif", 200), ("c.sif", 100), ("d.tar", 50)):
        (tmp_path / name).write_bytes(name.encode() * 10)
        if name != "c.sif":  # c.sif has no checksum sidecar: not complete
            (tmp_path / f"{name}.sha256").write_text("f" * 64 + "\n")
        os.utime(tmp_path / name, (1e9 - age, 1e9 - age))
    state = fact(tmp_path, "new.sif")
    assert (state.basis, state.basis_bytes) == ("b.sif", 50)
    assert fact(tmp_path, "b.sif").basis == "a.sif"  # never the file itself
    (tmp_path / ".incoming" / ".partial").mkdir(parents=True)
    (tmp_path / ".incoming" / ".partial" / "new.sif").write_bytes(b"k" * 77)
    assert fact(tmp_path, "new.sif").kept_bytes == 77
    assert fact(tmp_path / "empty", "new.sif").basis is None


def test_stored_files_count_links_and_list_what_uploads_left(tmp_path):
    """A hard link into .incoming (a delivery's basis) shows on the image; rsync's kept and
    temporary files in .incoming are listed with it, by their change time."""
    import os

    (tmp_path / ".incoming" / ".partial").mkdir(parents=True)
    (tmp_path / "old.sif").write_bytes(b"o")
    (tmp_path / "other.sif").write_bytes(b"p")
    os.link(tmp_path / "old.sif", tmp_path / ".incoming" / "new.sif")
    (tmp_path / ".incoming" / ".partial" / "newer.sif").write_bytes(b"k")
    (tmp_path / ".incoming" / ".newer.sif.Ab12Cd").write_bytes(b"t")
    command = StoredFiles().command(str(tmp_path), ".sif").get_raw_value()
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    rows = {row.name: row for row in StoredFiles().process(out.stdout.splitlines())}
    assert set(rows) == {
        "old.sif",
        "other.sif",
        ".incoming/new.sif",
        ".incoming/.partial/newer.sif",
        ".incoming/.newer.sif.Ab12Cd",
    }
    assert rows["old.sif"].links == 2 and rows["other.sif"].links == 1
    # by when they were written; the basis link by when it was made (not the image's old time)
    os.utime(tmp_path / ".incoming" / ".partial" / "newer.sif", (1e9, 1e9))
    os.utime(tmp_path / "old.sif", (1e9, 1e9))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    rows = {row.name: row for row in StoredFiles().process(out.stdout.splitlines())}
    assert rows[".incoming/.partial/newer.sif"].stamp == rows["old.sif"].stamp == 10**9
    assert rows[".incoming/new.sif"].stamp > 10**9


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


def login_script(command: str, whole: bool = False) -> list[str]:
    """The lines of a ``bash -lc SCRIPT`` command's script (``whole``: the script, unsplit)."""
    argv = shlex.split(command)
    assert argv[:2] == ["bash", "-lc"] and len(argv) == 3, command
    return [argv[2]] if whole else argv[2].splitlines()


def saved_credentials(text: str) -> dict:
    digest = FileDigest(0o600, 1000, hashlib.sha256(text.encode()).hexdigest())
    return {"FileSha256WithMode": {f"path={CREDENTIALS}": digest}}


def build_call(command) -> tuple[str, str, str, list[str]]:
    """A measured login-node build (``("call", "reported", COMMAND, WHAT)``), run in the login
    environment: the command the probe runs, the file whose size it reports, what the report
    names, and the login script's lines before it (modules, Apptainer's folders)."""
    call, name, measured, what = command
    assert (call, name) == ("call", "reported"), command
    [script] = login_script(measured.split(" || {")[0], whole=True)
    before, _, probe = script.partition("\n" + MADE)
    *_, inner, built = shlex.split(probe)
    assert "@@measured" in probe  # the probe's source, run with python3 -c
    return inner, built, what, before.splitlines()


def test_login_node_builds_from_the_registry_with_its_saved_credentials():
    commands, _ = run_op(
        sif_pulled, calls=True, facts={**NOT_BUILT, **saved_credentials(LOGIN)}, **PULL
    )
    assert commands[0] == "mkdir -p '/img dir/.incoming'"
    inner, built, what, env = build_call(commands[1])
    assert env == LOGIN_ENV and built == "/img dir/.incoming/s.sif"
    assert inner == (
        f"cd '/img dir' && ( set -a && . {CREDENTIALS} && set +a"
        f" && apptainer build --force .incoming/s.sif docker://{REF} )"
    )
    assert what == f"s.sif built from {REF}"
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
    commands, _ = run_op(sif_pulled, calls=True, facts=NOT_BUILT, **own)
    inner, _, _, env = build_call(commands[1])
    assert env == ["set -e", "module load apptainer/1.3.4", "module load squashfs", *LOGIN_ENV[1:]]
    assert inner == (
        "cd '/img dir' && ( \"${APPS}\"/apptainer/bin/apptainer build --force "
        f".incoming/s.sif docker://{REF} )"
    )
    # present: nothing is built, the saved credentials are not even looked at
    present = {"DeliveredFile": {"filename=s.sif, folder=/img": Delivery(True, "c" * 64, 0, 10**6)}}
    commands, host = run_op(sif_pulled, calls=True, facts=present, **{**PULL, "folder": "/img"})
    assert commands == [] and host.noops == ["s.sif is present"]


def test_new_credentials_replace_the_saved_ones_only_after_the_build_worked():
    commands, _ = run_op(
        sif_pulled, calls=True, facts={**NOT_BUILT, **saved_credentials("OLD=1\n")}, **PULL
    )
    assert commands == [
        "mkdir -p -m 700 /home/u/.config/isaac-deploy/registries",
        f"rm -f {STAGED} && ( umask 077 && : > {STAGED} )",
        ("upload", STAGED, LOGIN),
        "mkdir -p '/img dir/.incoming'",
        commands[4],
        f"chmod 600 {STAGED} && mv -f {STAGED} {CREDENTIALS}",
        commands[-1],
    ]
    build, built, _, env = build_call(commands[4])
    assert commands[4][2].endswith(f" || {{ rm -f {STAGED} ; exit 1; }}")
    assert built == "/img dir/.incoming/s.sif" and env == LOGIN_ENV
    assert build == (
        f"cd '/img dir' && ( set -a && . {STAGED} && set +a"
        f" && apptainer build --force .incoming/s.sif docker://{REF} )"
    )
    assert "mv -f .incoming/s.sif s.sif" in commands[-1]
    assert not any(
        "n3w pass" in str(c) for c in commands if not isinstance(c, tuple) or c[0] != "upload"
    )


def test_a_login_node_build_is_measured_by_the_probe(tmp_path):
    """The probe run for real: the command's own output and exit code pass through; the bytes
    that arrived in Apptainer's blob cache ($APPTAINER_CACHEDIR/cache/blob) are what it pulled;
    the built file's size; wall and CPU seconds."""
    import json
    import os

    from isaac_deploy.probes import program

    cache, built = tmp_path / "cache", tmp_path / "out.sif"
    (cache / "cache" / "blob" / "blobs" / "sha256").mkdir(parents=True)
    (cache / "cache" / "blob" / "blobs" / "sha256" / "old").write_bytes(b"o" * 5000)
    build = (
        f"head -c 3000 /dev/zero > {cache}/cache/blob/blobs/sha256/new && "
        f"head -c 7000 /dev/zero > {built} && echo built && exit 3"
    )
    env = {**os.environ, "APPTAINER_CACHEDIR": str(cache)}
    argv = ["python3", "-c", program("measured_build"), build, str(built)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert done.returncode == 3
    first, marker = done.stdout.splitlines()
    values = json.loads(marker.removeprefix("@@measured "))
    assert first == "built" and values["pulled_bytes"] == 3000 and values["built_bytes"] == 7000
    assert values["seconds"] >= 0 and values["cpu_seconds"] >= 0


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
    planned, _ = run_op(file_delivered, calls=True, facts=facts, executing=False, **args)
    assert len(planned) == 1 and planned[0][:2] == ("call", "send")
    failed, _ = run_op(
        file_delivered, calls=True, facts=facts, **args
    )  # executing, and still not built
    assert failed == [f"echo 'error: {local} was not built (no {local}.sha256)' >&2; exit 1"]
    local.write_bytes(b"sif")
    (tmp_path / "img.sif.sha256").write_text("a" * 64 + "\n")
    commands, _ = run_op(file_delivered, calls=True, facts=facts, **args)
    assert len(commands) == 3 and "a" * 64 in commands[2]


def test_a_changed_image_is_sent_against_the_newest_complete_one(tmp_path):
    """With an earlier complete image in the folder: its hard link is the transfer's basis
    (rsync without --inplace, so the link is never written), an interrupted transfer is kept in
    .incoming/.partial/; the space check counts the new file beside the basis, and, to resume,
    what arrived plus the basis again. Without one: the whole file, resumed in place."""
    local = tmp_path / "new.sif"
    local.write_bytes(b"x" * 4096 * 1024)
    args = dict(local_path=str(local), sha256="a" * 64, folder="/img", filename="new.sif")
    key = "filename=new.sif, folder=/img"
    delta = Delivery(False, None, 0, 10**6, basis="old.sif", basis_bytes=3 * 1024**2)
    commands, _ = run_op(file_delivered, calls=True, facts={"DeliveredFile": {key: delta}}, **args)
    assert commands[:3] == [
        "mkdir -p /img/.incoming",
        "cd /img/.incoming && if [ -s .partial/new.sif ]; then cat .partial/new.sif ../old.sif >"
        " .new.sif.basis && mv -f .new.sif.basis new.sif && rm -f .partial/new.sif ; elif [ ! -e"
        " new.sif ]; then ln ../old.sif new.sif 2>/dev/null || cp ../old.sif new.sif ; fi",
        (
            "call",
            "send",
            str(local),
            "/img/.incoming/new.sif",
            ("--partial-dir=.partial", "--times", "--ignore-times", "--info=progress2,stats1"),
            "old.sif",
        ),
    ]
    assert (
        "mv -f .incoming/new.sif new.sif" in commands[3]
        and "rmdir .incoming/.partial" in (commands[3])
    )
    # the space: 4 MiB beside the basis; resuming: + 1 MiB kept + the 3 MiB basis again
    tight = Delivery(False, None, 0, 4096 + 1 + 1024, basis="old.sif", basis_bytes=3 * 1024**2)
    commands, _ = run_op(file_delivered, calls=True, facts={"DeliveredFile": {key: tight}}, **args)
    assert len(commands) == 4
    resume = Delivery(False, None, 0, 8000, "old.sif", 3 * 1024**2, kept_bytes=1024**2)
    commands, _ = run_op(file_delivered, calls=True, facts={"DeliveredFile": {key: resume}}, **args)
    assert commands == [
        "echo 'error: not enough space in /img for new.sif: 8000 KiB free, 9217 KiB needed'"
        " >&2; exit 1"
    ]
    # no earlier image: the whole file, resuming in place what an earlier upload left
    full = Delivery(False, None, 1024**2, 4096 + 1 - 1024 + 1024)
    commands, _ = run_op(file_delivered, calls=True, facts={"DeliveredFile": {key: full}}, **args)
    assert commands[1] == (
        "call",
        "send",
        str(local),
        "/img/.incoming/new.sif",
        ("--partial", "--inplace", "--times", "--info=progress2,stats1"),
        None,
    )


def test_the_basis_is_linked_then_joined_with_what_an_interrupted_transfer_kept(tmp_path):
    """On real files, with real rsync (its delta algorithm, as between two hosts): the new file
    arrives byte for byte while the basis stays untouched; sent is about the inserted part; a
    resume joins what arrived with the basis, once (a second interruption replaces it)."""
    import os

    from isaac_deploy.operations.delivery import DELTA_FLAGS, basis_linked

    old = os.urandom(2 * 1024 * 1024)
    new = old[: 1024 * 1024] + os.urandom(100 * 1024) + old[1024 * 1024 :]
    folder, incoming = tmp_path / "images", tmp_path / "images" / ".incoming"
    incoming.mkdir(parents=True)
    (folder / "old.sif").write_bytes(old)
    (tmp_path / "new.sif").write_bytes(new)
    link = basis_linked(str(incoming), "new.sif", "old.sif").get_raw_value()

    def deliver() -> int:
        subprocess.run(["sh", "-c", link], check=True)
        argv = ["rsync", *DELTA_FLAGS, "--no-whole-file", "--stats", str(tmp_path / "new.sif")]
        done = subprocess.run([*argv, str(incoming / "new.sif")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        literal = [line for line in done.stdout.splitlines() if line.startswith("Literal data")]
        return int(literal[0].split(":")[1].split()[0].replace(",", ""))

    subprocess.run(["sh", "-c", link], check=True)
    assert os.path.samefile(incoming / "new.sif", folder / "old.sif")  # a link, no copy
    sent = deliver()
    assert (incoming / "new.sif").read_bytes() == new and (folder / "old.sif").read_bytes() == old
    assert 100 * 1024 <= sent < 200 * 1024
    # what an interrupted transfer kept (the first MiB arrived) and the basis: the next basis
    (incoming / "new.sif").unlink()
    (incoming / ".partial").mkdir()
    (incoming / ".partial" / "new.sif").write_bytes(new[: 1024 * 1024])
    subprocess.run(["sh", "-c", link], check=True)
    assert (incoming / "new.sif").read_bytes() == new[: 1024 * 1024] + old
    assert not (incoming / ".partial" / "new.sif").exists()
    subprocess.run(["sh", "-c", link], check=True)  # nothing kept meanwhile: used as it is
    assert (incoming / "new.sif").stat().st_size == 3 * 1024 * 1024
    assert deliver() < 200 * 1024
    assert (incoming / "new.sif").read_bytes() == new and (folder / "old.sif").read_bytes() == old


def test_rsync_push_reports_what_it_sent(tmp_path):
    from isaac_deploy.probes import local

    source = tmp_path / "a.bin"
    source.write_bytes(b"z" * 300_000)
    flags = ("--times", "--info=progress2,stats1")
    ok, sent, error = local.rsync_push("ssh", str(source), str(tmp_path / "b.bin"), flags)
    assert ok and error == "" and 300_000 <= sent < 310_000
    assert (tmp_path / "b.bin").read_bytes() == source.read_bytes()
    ok, _, error = local.rsync_push("ssh", str(tmp_path / "none"), str(tmp_path / "c"), flags)
    assert not ok and "none" in error


def pruned(facts: dict, keep: int) -> tuple:
    """``images_pruned`` of ``/img dir`` keeping ``keep`` images besides the current one."""
    from isaac_deploy.operations.delivery import images_pruned

    return run_op(
        images_pruned,
        facts,
        folder="/img dir",
        keep=keep,
        current="sha256-cur.sif",
        ledger="/l",
        scheduler="slurm",
        extension="ext",
    )


def test_images_pruned_keeps_retention_active_jobs_and_other_projects_images():
    import time

    from isaac_deploy.facts.scheduler import JobState
    from isaac_deploy.model.ledger import Entry, Ledger

    now = int(time.time())
    states = {"1": JobState("1", "COMPLETED", 0), "2": JobState("2", "RUNNING")}
    facts = {
        "StoredFiles": {
            "folder=/img dir, suffix=.sif": [
                Stored("foreign.sif", now - 9000),
                Stored("sha256-a.sif", now - 8000),
                Stored("sha256-b.sif", now - 7000),
                Stored("sha256-c.sif", now - 6000),
                Stored(".incoming/sha256-d.sif", now - 2 * 86400),
                Stored(".incoming/sha256-e.sif", now - 60),
                Stored("sha256-cur.sif", now),
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
    commands, host = pruned(facts, keep=2)
    # a: ended, beyond retention; b: running; c: kept by retention; foreign: not this project's;
    # the partial upload from two days ago goes, the one from a minute ago stays
    assert commands == [
        "cd '/img dir' && rm -rf -- .incoming/sha256-d.sif sha256-a.sif sha256-a.sif.sha256"
        " sha256-a.sandbox"
    ]
    assert host.noops == ["kept image sha256-b.sif: job 2 is RUNNING"]
    # sha256-a.sif is the basis of a delivery in progress (hard-linked into .incoming): kept;
    # what that delivery left in .incoming is young, so it stays too
    rows = facts["StoredFiles"]["folder=/img dir, suffix=.sif"]
    rows[1] = Stored("sha256-a.sif", now - 8000, links=2)
    rows.append(Stored(".incoming/.partial/sha256-new.sif", now - 30))
    commands, host = pruned(facts, keep=2)
    assert commands == ["cd '/img dir' && rm -rf -- .incoming/sha256-d.sif"]
    assert host.noops == [
        "kept image sha256-a.sif: the basis of a delivery in progress",
        "kept image sha256-b.sif: job 2 is RUNNING",
    ]
    # keep=1: job 3's image is a candidate too, so the scheduler is asked about it as well
    facts["JobStates"] = {"job_ids=('1', '2', '3'), scheduler=slurm": states}
    facts["ActiveJobs"] = {"scheduler=slurm": None}  # the scheduler cannot be asked: no image goes
    commands, host = pruned(facts, keep=1)
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
                Stored("sha256-a.sif", now - 8000),
                Stored("sha256-b.sif", now - 7000),
                Stored("sha256-cur.sif", now),
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


def test_a_measured_build_is_reported_in_one_line(caplog):
    """What the login node's build cost, from the probe's last line; a failed build logs its
    error and fails the step."""
    import logging
    from types import SimpleNamespace

    from isaac_deploy.operations.cluster_image import reported

    def host(ok: bool, stdout: list[str], stderr: str = ""):
        output = SimpleNamespace(stdout_lines=stdout, stderr=stderr)

        def run_shell_command(command, print_output=False):
            assert print_output  # the build's own output is its progress
            return ok, output

        return SimpleNamespace(print_prefix="[n] ", run_shell_command=run_shell_command)

    line = '@@measured {"seconds": 41.04, "cpu_seconds": 52.3, "pulled_bytes": 3958208, '
    line += '"built_bytes": 331640832}'
    with caplog.at_level(logging.INFO, logger="pyinfra"):
        assert reported(None, host(True, ["INFO: Build complete", line]), "cmd", "a.sif built")
        assert not reported(None, host(False, [], "FATAL: no such image"), "cmd", "b.sif built")
    assert caplog.messages == [
        "[n] a.sif built: pulled 3,958,208 bytes of layers (1.19% of the 331,640,832-byte image)"
        " in 41.0 s, CPU 52.3 s",
        "[n] b.sif built failed: FATAL: no such image",
    ]
