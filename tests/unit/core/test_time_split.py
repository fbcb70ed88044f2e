"""A stage's time split: each part's share of its pool's slot time, and what no part covers."""

from __future__ import annotations

import time

from voxray.pipeline.progress import CountRows
from voxray.pipeline.time_split import PartClock, describe_split, split_fractions


def test_shares_of_the_slot_time_and_the_idle_rest() -> None:
    # two actors for 10 s: 20 slot-seconds, of which 12 forward, 3 decode, 1 write
    shares = split_fractions({"forward": 12.0, "decode": 3.0, "write": 1.0}, 10.0, 2)
    assert shares == {"decode": 0.15, "forward": 0.6, "write": 0.05, "idle": 0.2}
    assert describe_split(shares) == "forward 60%, idle 20%, decode 15%, write 5%"
    # parts beyond the slots (write tasks beside busy actors) leave no negative idle
    assert split_fractions({"forward": 30.0}, 10.0, 2)["idle"] == 0.0


def test_a_clock_sums_each_part_until_taken() -> None:
    clock = PartClock()
    for _ in range(2):
        with clock.part("decode"):
            time.sleep(0.01)
    taken = clock.take()
    assert set(taken) == {"decode"} and taken["decode"] >= 0.02
    assert clock.take() == {}


class _Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []
        self.add = self  # counter.add.remote(...) as on a Ray actor handle

    def remote(self, rows: int, seconds: dict[str, float]) -> None:
        self.calls.append((rows, seconds))


class _Stage:
    def __init__(self) -> None:
        time.sleep(0.02)  # loading a model
        self.clock = PartClock()

    def __call__(self, batch):
        with self.clock.part("forward"):
            time.sleep(0.01)
        time.sleep(0.01)  # not covered by a part: "other"
        return batch


def test_count_rows_reports_start_up_once_parts_and_the_rest() -> None:
    import pyarrow as pa

    counter = _Counter()
    pool = CountRows(_Stage, (), counter)
    batch = pa.table({"x": [1, 2, 3]})
    pool(batch)
    pool(batch)
    (rows1, first), (rows2, second) = counter.calls
    assert rows1 == rows2 == 3
    assert first["start-up"] >= 0.02 and "start-up" not in second
    for parts in (first, second):
        assert parts["forward"] >= 0.01 and parts["other"] >= 0.01
