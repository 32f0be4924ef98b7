"""Atomic writes: the destination holds the old content or the new, never a part, and no
temporary file is left behind."""

from __future__ import annotations

import os
import stat

import pytest

from anyner.fileio import atomic_write, atomic_write_text


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "f.json"
    assert atomic_write_text(path, "one\n") == path
    assert path.read_text(encoding="utf-8") == "one\n"
    atomic_write_text(path, "twó\n")
    assert path.read_text(encoding="utf-8") == "twó\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old", encoding="utf-8")

    def half_then_fail(tmp):
        tmp.write_text("new, half writ", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_the_file_follows_the_umask(tmp_path):
    before = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_writer_that_replaces_the_temporary_file(tmp_path):
    # savefig and pyarrow open the path themselves, truncating what mkstemp created
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"\x89PNG")

    path = atomic_write(tmp_path / "chart.png", write)
    assert path.read_bytes() == b"\x89PNG"
