"""``compute_features``: what the Ray features stage calls per batch (extraction, VAD, CMN)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from voxray.config import FeatureConfig
from voxray.features import compute_features, energy_vad, frame_count

RAW = FeatureConfig(cmn=False, vad=False)


def _tone_in_silence(
    rng: np.random.Generator, seconds: float, silence_s: float = 0.5
) -> np.ndarray:
    """A [-1, 1] waveform: noisy 440 Hz tone between two stretches of near-silence."""
    t = np.arange(int(seconds * 16000)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(t.size)
    quiet = lambda: 1e-4 * rng.standard_normal(int(silence_s * 16000))  # noqa: E731
    return np.concatenate([quiet(), tone, quiet()]).astype(np.float32)


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_raw_features_are_torchaudio_on_int16_scaled_audio(
    kind: str, rng: np.random.Generator
) -> None:
    waves = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (3000, 12001, 200)]
    out = compute_features(waves, 16000, RAW, kind)
    assert [f.shape[0] for f in out] == [frame_count(w.size, RAW) for w in waves]
    assert out[2].shape == (0, 80)
    fn = kaldi.fbank if kind == "fbank" else kaldi.mfcc
    extra = {"num_ceps": 80} if kind == "mfcc" else {}
    for w, f in zip(waves[:2], out[:2], strict=True):
        assert f.dtype == np.float32
        ref = fn(
            torch.from_numpy(w)[None] * 32768.0, num_mel_bins=80, energy_floor=0.0, **extra
        ).numpy()
        np.testing.assert_allclose(f, ref, rtol=0.0, atol=1e-3)


def test_scale_one_takes_int16_valued_input(rng: np.random.Generator) -> None:
    wave = rng.uniform(-0.5, 0.5, 4000).astype(np.float32)
    a = compute_features([wave], 16000, RAW, "fbank")[0]
    b = compute_features([wave * 32768.0], 16000, RAW, "fbank", scale=1.0)[0]
    np.testing.assert_allclose(a, b, rtol=0.0, atol=1e-4)


def test_cmn_gives_zero_mean_per_utterance(rng: np.random.Generator) -> None:
    waves = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (3000, 9000)]
    for f in compute_features(waves, 16000, FeatureConfig(cmn=True), "mfcc"):
        np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-4)


def test_vad_drops_the_silence_and_cmn_uses_the_kept_frames(rng: np.random.Generator) -> None:
    wave = _tone_in_silence(rng, seconds=1.0)
    cfg = FeatureConfig(vad=True, cmn=True)
    total = frame_count(wave.size, cfg)
    kept = compute_features([wave], 16000, cfg, "fbank")[0]
    # about 1 s of tone = ~98 frames kept out of ~198; the 0.5 s pads are dropped
    assert 90 <= kept.shape[0] <= 102 < total
    np.testing.assert_allclose(kept.mean(axis=0), 0.0, atol=1e-4)
    raw = compute_features([wave], 16000, dataclasses.replace(cfg, vad=False, cmn=False), "fbank")[
        0
    ]
    energy = torch.from_numpy(np.log(np.exp(raw.astype(np.float64)).sum(axis=1)))
    assert energy_vad(energy).sum().item() == pytest.approx(kept.shape[0], abs=5)


def test_vad_keeps_a_minimum_of_frames(rng: np.random.Generator) -> None:
    quiet = (1e-4 * rng.standard_normal(16000)).astype(np.float32)
    cfg = FeatureConfig(vad=True, cmn=False, vad_energy_threshold=100.0)
    assert compute_features([quiet], 16000, cfg, "fbank", vad_min_frames=20)[0].shape == (20, 80)
    short = quiet[:1000]  # 4 frames: all are kept
    assert compute_features([short], 16000, cfg, "fbank", vad_min_frames=20)[0].shape == (4, 80)


def test_too_short_audio_gives_no_frames_even_with_vad_and_cmn() -> None:
    out = compute_features(
        [np.zeros(100, np.float32)], 16000, FeatureConfig(vad=True, cmn=True), "mfcc"
    )
    assert out[0].shape == (0, 80)
    assert out[0].dtype == np.float32


def test_unknown_kind() -> None:
    with pytest.raises(KeyError, match="features.kinds"):
        compute_features([np.zeros(800, np.float32)], 16000, RAW, "plp")
