"""The 003 settings are refused at config time when bad, naming the key, and paper003 holds
what its comments say: the widths scaled for 2 cores, 0.4-5 s segments, a 1024-sample window,
early stopping with patience 3, the single-segment baseline."""

from __future__ import annotations

import pytest

from voxray.config import ConfigError, KaldiParams, load_config
from voxray.features import FrontEndSpec


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tune.lstm_width.widths=[]", "tune.lstm_width: widths"),
        ("tune.lstm_width.widths=[64,64]", "each width once"),
        ("tune.lstm_width.widths=[0,8]", "positive LSTM widths"),
        ("tune.lstm_width.patience=0", "patience must be >= 1"),
        ("tune.lstm_width.val_fraction=0.7", r"val_fraction must lie in \(0, 0.5\)"),
        ("tune.lstm_width.max_train_utterances=-1", "max_train_utterances"),
        ("tune.lstm_width.widths=[a]", r"tune.lstm_width.widths\[0\]: expected an integer"),
        ("tune.segment_length.lengths_s=[0.0,1.0]", "positive segment lengths"),
        ("tune.segment_length.overlap=1.0", r"overlap must lie in \[0, 1\)"),
        ("tune.segment_length.scorers=[ahc]", r"segment_length.scorers\[0\]: 'ahc' is not one"),
        ("tune.segment_length.scorers=[]", "at least one of mean_cossim"),
        ("tune.lstm_width.enabled=true", "model.arch is 'ecapa_tdnn'"),
    ],
)
def test_bad_sweep_settings_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_paper003_builds_its_missing_experiments() -> None:
    cfg = load_config(profile="paper003")
    width, segment = cfg.tune.lstm_width, cfg.tune.segment_length
    # 003's 256/512/1024 scaled as the model is (channels 128 stands for 512)
    assert width.enabled and width.widths == (64, 128, 256) and cfg.model.channels == 128
    assert (width.patience, width.val_fraction) == (3, 0.1)
    assert segment.enabled and (min(segment.lengths_s), max(segment.lengths_s)) == (0.4, 5.0)
    assert set(segment.scorers) == {"mean_cossim", "mean_dot"}
    assert "single_segment" in cfg.eval.scorers
    assert not cfg.tune.enabled  # no masking sweep in 003


def test_paper003_windows_are_1024_samples() -> None:
    cfg = load_config(profile="paper003")
    extractor = FrontEndSpec("fbank", KaldiParams.of(cfg.features)).build()
    view = extractor.spectral_view(cfg.corpus.sample_rate)
    assert view is not None and (view.win_length, view.n_fft) == (1024, 1024)
    assert load_config().features.frame_length_ms == 25.0  # 400 samples elsewhere
