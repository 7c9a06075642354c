"""The workstation's own side: a SIF's checksum sidecar and size, read here."""

from __future__ import annotations

from isaac_deploy.probes import local


def test_sidecar_sha256_is_the_first_word_or_none(tmp_path):
    sif = tmp_path / "sha256-ab.sif"
    assert local.sidecar_sha256(str(sif)) is None  # not built yet
    (tmp_path / "sha256-ab.sif.sha256").write_text("")
    assert local.sidecar_sha256(str(sif)) is None  # empty
    (tmp_path / "sha256-ab.sif.sha256").write_text("a" * 64 + "  -\n")
    assert local.sidecar_sha256(str(sif)) == "a" * 64


def test_file_size_in_bytes(tmp_path):
    sif = tmp_path / "sha256-ab.sif"
    sif.write_bytes(b"x" * 4097)
    assert local.file_size(str(sif)) == 4097
    sif.write_bytes(b"")
    assert local.file_size(str(sif)) == 0


def test_a_private_folder_is_made_0700_and_a_loose_one_of_ours_tightened(tmp_path):
    import os
    import stat

    made = local.private_folder(str(tmp_path / "a" / "run"))
    assert stat.S_IMODE(os.lstat(made).st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    local.private_folder(str(loose))
    assert stat.S_IMODE(os.lstat(loose).st_mode) == 0o700


def test_a_folder_of_someone_else_or_a_link_is_refused(tmp_path):
    import os

    import pytest

    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o777)
    os.chown(foreign, os.getuid() + 4242, -1)  # the suite runs as root
    with pytest.raises(local.UnsafeFolder, match="belongs to uid"):
        local.private_folder(str(foreign))
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(local.UnsafeFolder, match="link"):
        local.private_folder(str(tmp_path / "link"))


def test_the_runtime_folder_is_the_sessions_or_under_the_cache(tmp_path, monkeypatch):
    session = tmp_path / "session"
    session.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(session))
    assert local.runtime_dir() == str(session / "isaac-deploy")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert local.runtime_dir() == str(tmp_path / "cache" / "isaac-deploy" / "run")


def test_a_snapshots_files_are_read_once_and_check_with_sha256sum(tmp_path):
    """The list rsync sends, the digest recorded and the sums checked on the login node come
    from one reading of the build context: what arrives is checked against what was hashed."""
    import os
    import subprocess

    from isaac_deploy.probes.context_digest import context_digest

    context, copy = tmp_path / "ext", tmp_path / "copy"
    for rel, text in {
        ".dockerignore": "*\n!source/\n",
        "source/pkg/a.py": "print(1)\n",
        "source/odd name\\x.py": "x\n",
        "tests/t.py": "t\n",
    }.items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(text)
    os.symlink("pkg/a.py", context / "source" / "link")
    os.mkfifo(context / "source" / "fifo")  # never sent
    files = local.snapshot_files(str(context))
    assert files.digest == context_digest(str(context))["digest"]
    sent = ["source/link", "source/odd name\\x.py", "source/pkg/a.py"]
    with open(files.files_from) as listed:
        assert listed.read().splitlines() == sent
    with open(local.context_file_list(str(context))) as listed:  # the benchmark's helper
        assert listed.read().splitlines() == sent
    assert [line.split("  ", 1)[1] for line in files.sha256sums.splitlines()] == sent[1:]
    subprocess.run(
        ["rsync", "-a", f"--files-from={files.files_from}", f"{context}/", f"{copy}/"], check=True
    )

    def check() -> int:
        sums = ["sha256sum", "-c", "--strict", "--quiet", "-"]
        return subprocess.run(sums, input=files.sha256sums, text=True, cwd=copy).returncode

    assert check() == 0 and os.readlink(copy / "source" / "link") == "pkg/a.py"
    (copy / "source" / "pkg" / "a.py").write_text("print(2)\n")
    assert check() != 0


def test_a_snapshot_holds_the_images_selection_with_the_users_include_paths(tmp_path):
    """The same files as the image: source/, scripts/ and isaac_image_paths, never a planted
    key, env file or editor folder; its digest is the image inputs' files digest."""
    from isaac_deploy.probes.context_digest import context_digest

    for rel in (
        "source/ext/setup.py",
        "scripts/train.py",
        "config/robot.yaml",
        "config/.env.robot",
        "source/ext/robot.key",
        ".vscode/tasks.json",
        "README.md",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    files = local.snapshot_files(str(tmp_path), ("config",))
    with open(files.files_from) as listed:
        assert listed.read().splitlines() == [
            "config/robot.yaml",
            "scripts/train.py",
            "source/ext/setup.py",
        ]
    assert files.digest == context_digest(str(tmp_path), ("config",))["digest"]
    assert files.digest != local.snapshot_files(str(tmp_path)).digest


def test_rsync_s_redrawn_progress_becomes_plain_lines_in_a_log(capfd):
    """rsync --info=progress2 redraws one line with \\r (the form rsync 3.5.0 wrote here, into
    a pipe); in a log or a pipe the last state is written as a line, at most every few seconds,
    and once at the end."""
    shown = local.ProgressLines(terminal=False, interval=3600)
    for chunk in (
        b"\r         32,768   0%    0.00kB/s    0:00:00",
        b"\r    104,857,600  50%  100.00MB/s    0:00:01",
        b"\r    209,715,200 100%  100.00MB/s    0:00:02 (xfr#1, to-chk=0/1)\n\n",
        b"sent 209,766,000 bytes  received 35 bytes\ntotal size is 209,715,200\n",
    ):
        shown.write(chunk)
    shown.close()
    err = capfd.readouterr().err
    assert err == "209,715,200 100%  100.00MB/s    0:00:02 (xfr#1, to-chk=0/1)\n"
    terminal = local.ProgressLines(terminal=True)
    terminal.write(b"\r  1   0%\r  2  50%")
    assert capfd.readouterr().err == "\r  1   0%\r  2  50%"
