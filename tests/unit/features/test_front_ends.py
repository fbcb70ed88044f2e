"""Front-ends as registered extractors: SpeechBrain's Fbank + InputNormalization computed by
voxray in one batch equals SpeechBrain's own modules run per utterance; specs round-trip
through YAML data and refuse what they do not know; each front-end gives its own Hz axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from speechbrain.lobes.features import Fbank as SbFbank
from speechbrain.processing.features import Filterbank, InputNormalization

from voxray.config import ConfigError, FeatureConfig
from voxray.features import (
    EXTRACTORS,
    FrontEndSpec,
    KaldiParams,
    SpeechBrainFbankParams,
    compute_features,
    kaldi_front_end,
    mel_center_frequencies,
)


def _waves(rng: np.random.Generator) -> list[np.ndarray]:
    """Utterances of different lengths (one under a frame), speech-like level and tilt."""
    out = []
    for n in (16000, 12345, 7999, 2501, 150):
        w = np.cumsum(rng.standard_normal(n)) * 0.002 + rng.standard_normal(n) * 0.01
        out.append(w.astype(np.float32))
    return out


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"n_mels": 40, "f_min": 60.0, "f_max": 7600.0},
        {"deltas": True, "std_norm": True},
        {"norm": "none"},
        {"win_length_ms": 20.0, "hop_length_ms": 12.5, "n_fft": 512},
    ],
    ids=["recipe", "band", "deltas-std", "no-norm", "geometry"],
)
def test_sb_fbank_equals_speechbrain(rng: np.random.Generator, changes: dict) -> None:
    p = SpeechBrainFbankParams(**changes)
    waves = _waves(rng)
    ours = FrontEndSpec("sb_fbank", p).build().compute(waves, 16000)
    fbank = SbFbank(
        n_mels=p.n_mels,
        f_min=p.f_min,
        f_max=p.f_max or None,
        deltas=p.deltas,
        n_fft=p.n_fft,
        win_length=p.win_length_ms,
        hop_length=p.hop_length_ms,
    )
    norm = InputNormalization(norm_type="sentence", std_norm=p.std_norm)
    for w, o in zip(waves, ours, strict=True):
        ref = fbank(torch.from_numpy(w)[None])
        if p.norm == "sentence":
            ref = norm(ref, torch.ones(1))
        ref = ref[0].numpy()
        assert o.shape == ref.shape and o.dtype == np.float32
        np.testing.assert_allclose(o, ref, atol=2e-4, rtol=1e-5)


def test_sb_fbank_bin_frequencies_are_speechbrains_filter_centres() -> None:
    ex = FrontEndSpec("sb_fbank", SpeechBrainFbankParams(n_mels=40, f_max=7000.0)).build()
    ref = Filterbank(n_mels=40, f_min=0, f_max=7000.0).f_central.numpy()
    np.testing.assert_allclose(ex.bin_frequencies(16000), ref, rtol=1e-6)
    assert ex.num_bins == 40 and ex.frame_shift_ms == 10.0
    deltas = FrontEndSpec("sb_fbank", SpeechBrainFbankParams(deltas=True)).build()
    assert deltas.num_bins == 240 and deltas.bin_frequencies(16000) is None


def test_each_front_end_has_its_own_hz_axis() -> None:
    kaldi = kaldi_front_end("fbank", FeatureConfig()).build().bin_frequencies(16000)
    sb = FrontEndSpec("sb_fbank", SpeechBrainFbankParams()).build().bin_frequencies(16000)
    np.testing.assert_allclose(kaldi, mel_center_frequencies(FeatureConfig(), 16000))
    assert kaldi.shape == sb.shape == (80,)
    assert abs(kaldi[0] - sb[0]) > 5.0  # Kaldi's band starts at 20 Hz, SpeechBrain's at 0
    assert kaldi_front_end("mfcc", FeatureConfig()).build().bin_frequencies(16000) is None


def test_sb_fbank_refuses_another_sample_rate() -> None:
    ex = FrontEndSpec("sb_fbank", SpeechBrainFbankParams()).build()
    with pytest.raises(ValueError, match="expects 16000 Hz audio, got 8000 Hz"):
        ex.compute([np.zeros(800, np.float32)], 8000)


def test_kaldi_front_end_computes_what_compute_features_does(rng: np.random.Generator) -> None:
    cfg = FeatureConfig(num_mel_bins=40, vad=True, cmn=True)
    spec = kaldi_front_end("fbank", cfg)
    assert spec.params == KaldiParams.of(cfg) and spec.params.num_mel_bins == 40
    waves = _waves(rng)[:3]
    for a, b in zip(
        spec.build().compute(waves, 16000),
        compute_features(waves, 16000, cfg, "fbank"),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["fbank", "mfcc", "sb_fbank"])
def test_spec_round_trips_through_yaml_data(name: str) -> None:
    cls = EXTRACTORS[name]
    spec = FrontEndSpec(name, cls.params_type())
    again = FrontEndSpec.from_dict(spec.to_dict(), "config.yaml")
    assert again == spec and hash(again) == hash(spec)


def test_spec_refuses_unknown_names_and_keys() -> None:
    with pytest.raises(ConfigError, match=r"m\.yaml: front_end\.name: unknown front-end 'plp'"):
        FrontEndSpec.from_dict({"name": "plp", "params": {}}, "m.yaml")
    with pytest.raises(ConfigError, match=r"front_end\.params: unknown config key n_mel\b"):
        FrontEndSpec.from_dict({"name": "sb_fbank", "params": {"n_mel": 80}}, "m.yaml")
    with pytest.raises(TypeError, match="takes SpeechBrainFbankParams"):
        FrontEndSpec("sb_fbank", KaldiParams())
