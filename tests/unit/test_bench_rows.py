"""specs bench's rows file under faults: a row torn by a kill, two runs on one folder,
a (method, problem) pair written twice. A scripted engine, no models."""

from __future__ import annotations

import json
import threading

import pytest

from tests.helpers.fakes import fake_engine

from specs_engine.app import bench
from specs_engine.config import Budget, SpecsConfig
from specs_engine.app.data.gsm8k import Problem
from specs_engine.errors import ConfigError

PROBLEMS = [Problem(f"p{i}", f"What is {i} + 0?", "42", (), i, "test") for i in range(3)]
ARMS = [bench.Arm("greedy")]


def run(out, engine=None):
    return bench.run_rows(engine or fake_engine(), PROBLEMS, ARMS, SpecsConfig(), Budget(), out)


def test_a_torn_last_row_is_cut_off_and_its_problem_run_again(tmp_path):
    path = run(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # killed mid-row
    run(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]  # every line whole
    assert sorted(r["problem"] for r in rows) == ["p0", "p1", "p2"]


def test_the_summary_reads_past_a_torn_row(tmp_path):
    path = run(tmp_path)
    with path.open("a") as rows:
        rows.write('{"arm": "greedy", "problem": "p9", "corr')
    table = bench.write_summary(tmp_path)
    assert [(t["arm"], t["problems"]) for t in table] == [("greedy:target", 3)]


def test_a_pair_written_twice_is_counted_once(tmp_path):
    path = run(tmp_path)
    row = json.loads(path.read_text().splitlines()[0])
    with path.open("a") as rows:
        rows.write(json.dumps({**row, "correct": not row["correct"]}) + "\n")
    assert bench.write_summary(tmp_path)[0]["problems"] == 3


class Blocking:
    """An engine whose first call waits until released, so a run is 'in progress'."""

    def __init__(self):
        self.inner, self.started, self.release = fake_engine(), threading.Event(), threading.Event()

    def generate(self, *args, **kwargs):
        self.started.set()
        assert self.release.wait(10)
        return self.inner.generate(*args, **kwargs)


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path):
    first = Blocking()
    worker = threading.Thread(target=run, args=(tmp_path, first))
    worker.start()
    assert first.started.wait(10)
    try:
        with pytest.raises(ConfigError, match="another `specs bench`.*writing to"):
            run(tmp_path)
    finally:
        first.release.set()
        worker.join()
    rows = [json.loads(line) for line in (tmp_path / bench.ROWS).read_text().splitlines()]
    assert len(rows) == 3 and len({r["problem"] for r in rows}) == 3
    run(tmp_path)  # the lock went with the first run
