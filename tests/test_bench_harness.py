"""The benchmark harness's shared record: rows from processes running at once all land."""

from __future__ import annotations

import json
import multiprocessing as mp

from bench.harness import record_row


def _add_rows(path, who, n):
    for i in range(n):
        record_row(path, f"{who}:{i}", {"who": who, "i": i}, about="test")


def test_two_processes_adding_rows_at_once_keep_every_row(tmp_path):
    out = tmp_path / "record.json"
    record_row(out, "first", {"kept": True}, about="test")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_add_rows, args=(out, who, 40)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    doc = json.loads(out.read_text())
    assert doc["about"] == "test"
    assert set(doc["rows"]) == {"first"} | {f"{w}:{i}" for w in "ab" for i in range(40)}
    assert doc["rows"]["b:39"] == {"who": "b", "i": 39}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json", "record.json.lock"]  # no temp file left
