"""`--db` pointed at another program's SQLite file: refused (exit 2) after a read-only look, the file untouched
(not switched to WAL, no mlfarm tables added)."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from orchestrator.results import ResultsStore
from orchestrator.results.store import ForeignDatabaseError


def foreign(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_mode(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_a_foreign_database_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "other.sqlite"
    digest = foreign(path)
    with pytest.raises(ForeignDatabaseError) as info:
        ResultsStore(path)
    assert info.value.exit_code == 2 and "users" in info.value.message and info.value.fix
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert journal_mode(path) == "delete" and not (tmp_path / "other.sqlite-wal").exists()


def test_the_cli_refuses_it_with_exit_2(tmp_path, mlfarm):
    path = tmp_path / "other.sqlite"
    digest = foreign(path)
    result = mlfarm("--db", path, "runs")
    assert result.exit_code == 2 and "another program" in result.err and "fix:" in result.err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_an_empty_file_and_our_own_database_still_open(tmp_path):
    (tmp_path / "empty.db").touch()
    with ResultsStore(tmp_path / "empty.db") as store:
        run_id = store.create_run(spec_name="s", spec_digest="d")
    with ResultsStore(tmp_path / "empty.db") as store:
        assert store.get_run(run_id) is not None
