"""The console a person reads: a stage's progress in a few lines, and the check that finds
Ray's own output in a console log (the lead asserts it on the end-to-end smoke run)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc

from voxray.log import CONSOLE_MAX_LINES, Progress, console_problems, first_sentence, ray_noise
from voxray.pipeline.progress import CountRows


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_file_prints_a_line_every_period_and_at_the_end() -> None:
    clock, stream = Clock(), io.StringIO()
    p = Progress("stage features", 300, stream=stream, clock=clock, every_s=10.0)
    for second in range(1, 31):  # 10 rows a second for 30 s, one update a second
        clock.now += 1.0
        p.update(10 * second)
    p.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # at 10 s, 20 s, 30 s (the last one is not repeated by close)
    assert "stage features: 100/300 rows (33%), 10 rows/s, ETA 20s" in lines[0]
    assert "200/300 rows (67%), 10 rows/s, ETA 10s" in lines[1]
    assert "300/300 rows (100%)" in lines[2] and "ETA done" in lines[2]


def test_progress_on_a_terminal_redraws_one_line_with_a_bar() -> None:
    clock, stream = Clock(), Terminal()
    p = Progress("stage embed", 40, stream=stream, clock=clock)
    for done in (10, 20, 30, 40):
        clock.now += 1.0
        p.update(done)
    p.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn in place
    assert text.count("\r") == 4
    last = text.rsplit("\r", 1)[1]
    assert "[########################] 40/40 rows (100%), 10 rows/s, ETA done" in last


def test_progress_without_a_total_counts_rows_and_rate() -> None:
    clock, stream = Clock(), io.StringIO()
    p = Progress("stage mask", None, stream=stream, clock=clock)
    clock.now += 4.0
    p.update(8)
    p.close()
    assert "stage mask: 8 rows, 2 rows/s, 4s" in stream.getvalue()


def test_a_slow_stage_shows_its_rate_to_three_digits() -> None:
    clock, stream = Clock(), io.StringIO()
    p = Progress("stage attribute", 3, stream=stream, clock=clock)
    clock.now += 120.0
    p.update(1)
    p.close()
    assert "1/3 rows (33%), 0.00833 rows/s, ETA 4m00s" in stream.getvalue()


VOXRAY = """[voxray] 14:04:33 INFO starting a local Ray (no RAY_ADDRESS given)
[voxray] 14:05:42 INFO stage manifest: done in 18.5 s (24 in, 24 out, 0 quarantined)
[voxray] 14:06:01 WARNING evaluate: gender skipped: one gender only
"""
RAY = [
    "\x1b[36m(PlacementGroupCleaner pid=23601)\x1b[0m Failed to query Ray Train Controller actor "
    "state. State API may be temporarily unavailable. Continuing to monitor.",
    "Failed to query Ray Train Controller actor state. State API may be temporarily unavailable.",
    "(TrainController pid=22551) Requesting resources: {'CPU': 1.0} * 1",
    "2026-12-05 14:05:24,623\tWARNING __init__.py:28 -- Progress bars disabled. To enable, set "
    "`ray.data.DataContext.get_current().enable_progress_bars = True`.",
    "Running 0: 0.00 row [00:00, ? row/s]",
    "│ Configuration for experiment     sweep                   │",
    "View detailed results here: /tmp/out/tune/ray/sweep",
    "- MapBatches(ComputeFeatures): Tasks: 1; Actors: 2; Queued blocks: 0; 12.0 row [00:03, "
    "3.91 row/s]",
    "Parquet dataset sampling: 100%|██████████| 2.00/2.00 [00:02<00:00, 1.26s/ file]",
]


def test_a_voxray_console_has_no_problems() -> None:
    assert console_problems(VOXRAY) == []
    assert ray_noise(VOXRAY) == []


def test_every_kind_of_ray_noise_is_found() -> None:
    for line in RAY:
        assert ray_noise(VOXRAY + line + "\n") == [line], line
    problems = console_problems(VOXRAY + "\n".join(RAY))
    assert len(problems) == 1 and problems[0].startswith(f"{len(RAY)} lines of Ray's own output")


def test_a_console_longer_than_the_limit_is_a_problem() -> None:
    long = "[voxray] 14:00:00 INFO a line\n" * (CONSOLE_MAX_LINES + 1)
    assert console_problems(long) == [f"{CONSOLE_MAX_LINES + 1} lines (at most 300)"]
    assert console_problems(long, max_lines=400) == []


class FakeCounter:
    """A RowCounter handle's ``add.remote`` without Ray."""

    def __init__(self) -> None:
        self.added: list[int] = []
        self.add = self

    def remote(self, rows: int, seconds: dict[str, float] | None = None) -> None:
        self.added.append(rows)


class Double:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.table({"x": pc.multiply(batch.column("x"), self.factor)})


def test_count_rows_passes_the_stage_output_through_and_counts_input_rows() -> None:
    counter = FakeCounter()
    fn = CountRows(Double, (2,), counter)
    out = fn(pa.table({"x": [1, 2, 3]}))
    assert out.column("x").to_pylist() == [2, 4, 6]
    fn(pa.table({"x": [5]}))
    assert counter.added == [3, 1]


def test_progress_in_a_file_spaces_its_lines_as_the_stage_ages_and_when_stalled() -> None:
    clock, stream = Clock(), io.StringIO()
    p = Progress("stage train", 3600, stream=stream, clock=clock, every_s=10.0)
    for second in range(1, 3601):  # one row a second for an hour
        clock.now += 1.0
        p.update(second)
    p.close()
    lines = stream.getvalue().splitlines()
    # 10 s apart for the first 100 s, then a tenth of the age: about 10 + 10 ln(36) lines
    assert 40 <= len(lines) <= 50, len(lines)
    assert "3600/3600 rows (100%)" in lines[-1]

    clock, stream = Clock(), io.StringIO()
    p = Progress("stage attribute", 14, stream=stream, clock=clock, every_s=10.0)
    clock.now += 11.0
    p.update(1)  # a row: shown
    for _ in range(59):  # then nothing new for a minute: one heartbeat at 60 s, not six
        clock.now += 1.0
        p.update(1)
    assert len(stream.getvalue().splitlines()) == 1
    clock.now += 1.0
    p.update(1)
    assert len(stream.getvalue().splitlines()) == 2


def test_the_clusters_errors_become_one_sentence_voxray_warnings(monkeypatch) -> None:
    """Ray's driver prints each error its cluster publishes raw, '(raylet)'-prefixed (a line
    the console check counts as Ray's own): routed, it is one voxray warning of its first
    sentence, whole in Ray's driver log; the workers' forwarded output is still Ray's to print;
    routing twice does not wrap twice."""
    import logging

    import ray._private.worker as ray_worker

    from voxray.pipeline import ray_env

    printed: list[dict] = []
    monkeypatch.setattr(ray_worker, "print_to_stdstream", lambda data, _: printed.append(data))
    ray_env.route_ray_errors()
    routed = ray_worker.print_to_stdstream
    ray_env.route_ray_errors()
    assert ray_worker.print_to_stdstream is routed
    console, whole = io.StringIO(), io.StringIO()
    for name, stream in (("voxray.pipeline.ray_env", console), ("ray", whole)):
        handler = logging.StreamHandler(stream)
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
        monkeypatch.setattr(logging.getLogger(name), "handlers", [handler])
    died = (
        "A worker died or was killed while executing a task by an unexpected system error. "
        "To troubleshoot the problem, check the logs in the dashboard."
    )
    routed({"lines": [died], "pid": "raylet", "is_err": False}, False)
    assert console.getvalue() == (
        "Ray: A worker died or was killed while executing a task by an unexpected system error.\n"
    )
    assert died in whole.getvalue() and printed == []
    worker_line = {"lines": ["hello"], "pid": 123, "is_err": False}
    routed(worker_line, False)
    assert printed == [worker_line]
    assert first_sentence("x" * 300).endswith("...")
    assert len(first_sentence("x" * 300)) == 200
