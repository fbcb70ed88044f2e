"""The driver's line per finished training epoch, read from the checkpoint folders rank 0
names ``epoch_NNNN`` (voxray.train.loop)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from voxray.io.storage import Storage
from voxray.train import epoch_progress
from voxray.train.epoch_progress import EpochProgress, newest_epoch, progress_line


def test_newest_epoch_reads_the_checkpoint_names() -> None:
    names = ["epoch_0002", "epoch_0010/", "checkpoint_manager_snapshot.json", "epoch_x"]
    assert newest_epoch(names) == 10
    assert newest_epoch(["result.json"]) == 0


def test_progress_line_gives_the_eta_from_the_epochs_trained_here() -> None:
    assert (
        progress_line("ecapa", 3, 12, 30.0, 1)
        == "train ecapa: epoch 3/12 done, 30 s, ETA 1 min 30 s"
    )
    # resumed after epoch 5: 2 epochs in 20 s, 5 left
    assert progress_line("m", 7, 12, 20.0, 6).endswith("ETA 50 s")


def test_each_new_epoch_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(epoch_progress, "POLL_S", 0.02)
    run = tmp_path / "runs" / "ecapa"
    with caplog.at_level(logging.INFO, logger=epoch_progress.log.name):
        with EpochProgress(Storage(str(tmp_path / "runs")).child("ecapa"), "ecapa", 3):
            time.sleep(0.1)  # the folder does not exist yet: nothing, no error
            for epoch in (1, 2):
                (run / f"epoch_{epoch:04d}").mkdir(parents=True)
                time.sleep(0.2)
            time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if "train ecapa" in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == [
        "train ecapa: epoch 1/3 done",
        "train ecapa: epoch 2/3 done",
    ]
