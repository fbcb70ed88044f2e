"""003's sweeps through ``voxray tune`` on a tiny corpus (Ray Tune grids): the LSTM width sweep
trains one BiLSTM per width with early stopping and the segment-length sweep scores the frozen
model per length; each writes tune/<sweep>.parquet and metrics/ rows with intervals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pipeline import read, run_cli
from voxray.config import ModelConfig
from voxray.io.run_state import mark_stage_done
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray
BILSTM = ModelConfig(arch="bilstm", channels=8, embedding_dim=16)
ARGS = [
    "--profile",
    "smoke",
    "model.arch=bilstm",
    "model.mfa_channels=0",
    "model.channels=8",
    "model.embedding_dim=16",
    "train.name=bilstm",
    "features.kinds=[]",
    "tune.enabled=false",
    "tune.lstm_width.enabled=true",
    "tune.lstm_width.widths=[4, 8]",
    "tune.lstm_width.max_epochs=3",
    "tune.lstm_width.patience=1",
    "tune.lstm_width.val_fraction=0.25",
    "tune.segment_length.enabled=true",
    "tune.segment_length.lengths_s=[0.3, 1.0]",
    "tune.sweep_utterances=12",
    "eval.intervals.resamples=100",
]


def test_003_sweeps_write_an_eer_with_interval_per_value(tmp_path: Path) -> None:
    out = tmp_path / "out"
    storage = make_outputs(str(out), bins=20, model=False)
    train = sorted(
        {
            u.split("/")[0]
            for u in read(out, "manifest.parquet").to_pandas().query("split == 'train'").utt_id
        }
    )
    save_model(
        storage, "models/bilstm", build_classifier(BILSTM, 20, len(train)), BILSTM, train, 20
    )
    mark_stage_done(storage, "train", {"models": ["bilstm"]})
    run_cli("tune", "--out", str(out), *ARGS)
    for sweep, conditions, scorers in (
        ("lstm_width", {"width=4", "width=8"}, {"cosine"}),
        ("segment_length", {"segment_s=0.3", "segment_s=1.0"}, {"mean_cossim", "mean_dot"}),
    ):
        trials = read(out, f"tune/{sweep}.parquet").to_pandas()
        assert trials.trial_id.nunique() == 2 and (trials.status == "done").all()
        m = read(out, f"metrics/tune-{sweep}.parquet").to_pandas()
        assert set(m.condition) == conditions and set(m.scorer) == scorers
        assert len(m) == len(conditions) * len(scorers) and (m.list == sweep).all()
        assert ((m.ci_low <= m.value) & (m.value <= m.ci_high)).all(), m
        assert (m.n > 0).all() and (m.model == "bilstm").all()
    trials = read(out, "tune/lstm_width.parquet").to_pandas()
    epochs = trials[trials.metric == "epoch"].value
    assert epochs.between(1, 3).all()
