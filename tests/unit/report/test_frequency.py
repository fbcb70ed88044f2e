"""Frequency profiles: per-utterance normalisation, voice-band concentration, band shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torchaudio.compliance.kaldi import get_mel_banks

from voxray.config import FeatureConfig
from voxray.features import mel_center_frequencies
from voxray.report.profiles import mean_profiles
from voxray.report.sections.frequency import (
    BANDS,
    band_shares,
    signal_bins,
    voice_band_concentration,
)


def test_hz_axis_matches_torchaudio_kaldi_mel_centres() -> None:
    """The report puts profiles on these centres; they must be Kaldi's (512-point FFT at 16 kHz)."""
    cfg = FeatureConfig(num_mel_bins=40)
    _, centres = get_mel_banks(40, 512, 16000.0, cfg.low_freq, cfg.high_freq, 100.0, -500.0, 1.0)
    assert mel_center_frequencies(cfg, 16000) == pytest.approx(centres.numpy().ravel(), rel=1e-6)


def test_mean_profiles_weigh_each_utterance_equally() -> None:
    frame = pd.DataFrame(
        {
            "method": ["ig", "ig", "ig", "sal"],
            "pathway": ["classification"] * 4,
            "freq_profile": [
                np.array([1.0, 1.0]),
                np.array([-20.0, 0.0]),
                np.array([0.0, 0.0]),
                np.array([3.0, 1.0]),
            ],
        }
    )
    out = mean_profiles(frame)
    assert sorted(out) == ["ig/classification", "sal/classification"]
    # [0.5, 0.5] and [1, 0] (|-20| scaled); the all-zero profile is skipped
    assert out["ig/classification"] == pytest.approx([0.75, 0.25])
    assert out["sal/classification"] == pytest.approx([0.75, 0.25])


def test_voice_band_concentration_hand_case() -> None:
    hz = np.array([50.0, 100.0, 1000.0, 5000.0])
    c = voice_band_concentration(np.array([1.0, 3.0, 3.0, 1.0]), hz, "x")
    assert c is not None
    assert (c.ratio, c.inside_share, c.bin_share) == pytest.approx((3.0, 0.75, 0.5))
    assert voice_band_concentration(np.ones(2), np.array([100.0, 200.0]), "all inside") is None
    with pytest.raises(ValueError, match="3 bins but the frequency axis has 4"):
        voice_band_concentration(np.ones(3), hz, "bad")


def test_band_shares_sum_to_one_and_match_a_hand_count() -> None:
    hz = np.array([50.0, 100.0, 500.0, 2000.0, 4000.0, 6000.0])
    out = band_shares({"m": np.array([1.0, 2.0, 3.0, 4.0, 0.0, 0.0])}, hz)
    assert list(out.columns) == [b[0] for b in BANDS]
    assert out.loc["m"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.0])
    assert out.loc["uniform"].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 6, 2 / 6])


def test_signal_bins_and_the_uniform_reference_over_them() -> None:
    spread = np.array([4.0, 4.0, 3.0, 0.5, 0.4, 4.0])
    assert signal_bins(spread, 6).tolist() == [True, True, True, False, False, True]
    assert signal_bins(None, 3).all() and signal_bins(spread, 4).all()  # unknown: all bins
    hz = np.array([50.0, 200.0, 500.0, 1500.0, 4000.0, 6000.0])
    shares = band_shares({"m": np.ones(6)}, hz, signal_bins(spread, 6))
    # 4 bins carry signal: < 70 Hz, F0, F1 and > 3 kHz one each, F2's bin is silent
    assert shares.loc["uniform"].tolist() == [0.25, 0.25, 0.25, 0.0, 0.25]
