"""backend/files.py: files written whole or not at all, with the permissions a reader expects."""

from __future__ import annotations

import json
import os

import pytest

from backend import files


def test_write_atomically_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "sub" / "export.json"
    files.write_atomically(out, lambda f: f.write("[]"))
    files.write_atomically(out, lambda f: f.write("[1]"))
    assert out.read_text() == "[1]"
    assert [p.name for p in out.parent.iterdir()] == ["export.json"]
    with pytest.raises(ZeroDivisionError):
        files.write_atomically(out, lambda f: 1 / 0)
    assert out.read_text() == "[1]" and len(list(out.parent.iterdir())) == 1


def test_ordinary_files_follow_the_umask_and_secrets_are_private(tmp_path):
    plain, secret = tmp_path / "plain.txt", tmp_path / "token"
    files.write_atomically(plain, lambda f: f.write("x"))
    files.write_atomically(secret, lambda f: f.write("t0ken"), private=True)
    assert plain.stat().st_mode & 0o777 == 0o666 & ~files._UMASK
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_text() == "t0ken"


def test_binary_writes_and_json(tmp_path):
    files.write_atomically(tmp_path / "b.bin", lambda f: f.write(b"\x00\xff"), binary=True)
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    files.write_json(tmp_path / "r.json", {"label": "Négatif", "n": [1, 2]}, indent=2)
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and "Négatif" in text and json.loads(text) == {"label": "Négatif", "n": [1, 2]}
    assert sorted(os.listdir(tmp_path)) == ["b.bin", "r.json"]  # no temporary file left behind
