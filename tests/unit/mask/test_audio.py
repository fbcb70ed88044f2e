"""Explanations as audio (voxray.mask.audio): the two parts add up to the original, a map of
ones keeps everything, a map zero on a band or on a stretch of frames removes exactly that,
and the mel-to-STFT mapping is the filter bank's (for Kaldi's triangles: linear in mel between
the filters' centres, derived by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from voxray.config import FeatureConfig
from voxray.features.base import FrontEndSpec, SpectralView
from voxray.features.ge2e_mel import Ge2eMelParams
from voxray.features.kaldi import kaldi_front_end, mel_center_frequencies
from voxray.features.speechbrain import SpeechBrainFbankParams
from voxray.mask.audio import feature_mask, split_speech, stft_mask

RATE = 16000
FRONT_ENDS = {
    "fbank": kaldi_front_end("fbank", FeatureConfig()),
    "sb_fbank": FrontEndSpec("sb_fbank", SpeechBrainFbankParams()),
    "ge2e_mel": FrontEndSpec("ge2e_mel", Ge2eMelParams()),
}


def _speech_like(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A 120 Hz harmonic series with a formant-like envelope, plus a little noise: energy
    across the whole band, as speech has."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(
        np.sin(2 * np.pi * 120 * k * t + rng.uniform(0, 2 * np.pi)) / (1 + k / 10)
        for k in range(1, 60)
    )
    wave = wave + 0.05 * rng.standard_normal(t.size)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def _features(name: str, wave: np.ndarray) -> tuple[np.ndarray, SpectralView]:
    extractor = FRONT_ENDS[name].build("cpu", RATE)
    view = extractor.spectral_view(RATE)
    assert view is not None
    return extractor.compute([wave], RATE)[0], view


def _band_energy(wave: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    hz = np.fft.rfftfreq(wave.size, 1 / RATE)
    return float(spectrum[(hz >= low) & (hz < high)].sum())


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_kept_and_removed_add_up_to_the_original(name: str) -> None:
    wave = _speech_like()
    feats, view = _features(name, wave)
    relevance = np.random.default_rng(1).standard_normal(feats.shape)
    split = split_speech(wave, relevance, view)
    assert split.kept.shape == split.removed.shape == wave.shape
    assert _snr_db(wave, split.kept + split.removed) >= 30.0
    # a random signed map keeps some speech and removes some: each part holds a real share
    for part in (split.kept, split.removed):
        assert 0.01 < np.sum(part**2) / np.sum(wave**2) < 0.99


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_a_map_of_ones_keeps_everything(name: str) -> None:
    wave = _speech_like()
    feats, view = _features(name, wave)
    split = split_speech(wave, np.ones_like(feats), view)
    assert _snr_db(wave, split.kept) >= 30.0
    assert np.sum(split.removed**2) <= 1e-6 * np.sum(wave**2)


def test_a_map_zero_on_a_band_removes_that_bands_energy() -> None:
    wave = _speech_like()
    feats, view = _features("fbank", wave)
    hz = mel_center_frequencies(FeatureConfig(), RATE)
    band = (hz >= 1000) & (hz <= 2000)
    relevance = np.ones_like(feats)
    relevance[:, band] = 0.0
    split = split_speech(wave, relevance, view)
    # well inside the zeroed filters: their neighbours' skirts do not reach here
    inner = (hz[band][2], hz[band][-3])
    assert _band_energy(split.kept, *inner) <= 1e-3 * _band_energy(wave, *inner)
    removed = _band_energy(split.removed, *inner)
    assert removed == pytest.approx(_band_energy(wave, *inner), rel=0.01)
    for outside in ((100, 700), (3000, 7000)):
        assert _band_energy(split.kept, *outside) == pytest.approx(
            _band_energy(wave, *outside), rel=0.01
        )
        assert _band_energy(split.removed, *outside) <= 1e-3 * _band_energy(wave, *outside)


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_a_map_zero_on_frames_removes_that_stretch_of_time(name: str) -> None:
    wave = _speech_like()
    feats, view = _features(name, wave)
    relevance = np.ones_like(feats)
    # frames centred in [0.5, 1.0) s
    centres = (view.first_centre + np.arange(feats.shape[0]) * view.hop) / RATE
    relevance[(centres >= 0.5) & (centres < 1.0)] = 0.0
    split = split_speech(wave, relevance, view)
    inside = slice(int(0.55 * RATE), int(0.95 * RATE))  # a window's length from the edges
    outside = slice(0, int(0.45 * RATE))
    assert np.sum(split.kept[inside] ** 2) <= 1e-3 * np.sum(wave[inside] ** 2)
    assert _snr_db(wave[outside], split.kept[outside]) >= 30.0


def test_mel_bins_map_to_stft_bins_by_the_filter_weights() -> None:
    """Kaldi's triangles are linear in mel and each STFT bin lies under two neighbours whose
    weights sum to one, so the weighted mean is linear interpolation in mel between the
    centres (and the edge value beyond the outer centres)."""
    cfg = FeatureConfig()
    view = FRONT_ENDS["fbank"].build("cpu", RATE).spectral_view(RATE)
    assert view is not None
    row = np.random.default_rng(2).uniform(size=(1, cfg.num_mel_bins))
    got = stft_mask(row, view, 1)[:, 0]

    def mel(f: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log1p(f / 700.0)

    hz = np.arange(view.n_fft // 2 + 1) * RATE / view.n_fft
    expected = np.interp(mel(hz), mel(mel_center_frequencies(cfg, RATE)), row[0])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_feature_mask_is_the_maps_positive_evidence_over_its_peak() -> None:
    a = np.array([[2.0, -1.0], [0.5, 4.0]])
    np.testing.assert_allclose(feature_mask(a), [[0.5, 0.0], [0.125, 1.0]])
    assert not feature_mask(-a.clip(min=0)).any()  # no positive evidence: nothing kept


def test_front_ends_without_spectral_bins_have_no_view() -> None:
    assert kaldi_front_end("mfcc", FeatureConfig()).build().spectral_view(RATE) is None
    vad = kaldi_front_end("fbank", FeatureConfig(vad=True)).build().spectral_view(RATE)
    assert vad is None
    deltas = FrontEndSpec("sb_fbank", SpeechBrainFbankParams(deltas=True)).build()
    assert deltas.spectral_view(RATE) is None
