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
