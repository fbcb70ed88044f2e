"""Batched fbank / MFCC against torchaudio's per-utterance Kaldi functions, option by option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from voxray.config import FeatureConfig
from voxray.features import (
    EXTRACTORS,
    Fbank,
    KaldiOptions,
    frame_count,
    get_extractor,
    mel_center_frequencies,
    register_extractor,
)

TOL = 1e-3
#: odd lengths, exactly one frame, one frame + 1, a frame boundary +- 1, a few seconds at 16 kHz
LENGTHS = (400, 401, 559, 560, 561, 1233, 4801, 16000, 40007)


def _waves(lengths: tuple[int, ...], scale: float, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g) * scale for n in lengths]


def _torchaudio(
    kind: str, wave: torch.Tensor, cfg: FeatureConfig, opt: KaldiOptions, sr: int
) -> torch.Tensor:
    kw = dict(
        sample_frequency=float(sr),
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        window_type=cfg.window,
        preemphasis_coefficient=cfg.preemphasis,
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        num_mel_bins=cfg.num_mel_bins,
        snip_edges=opt.snip_edges,
        remove_dc_offset=opt.remove_dc_offset,
        round_to_power_of_two=opt.round_to_power_of_two,
        raw_energy=opt.raw_energy,
        energy_floor=opt.energy_floor,
        use_energy=opt.use_energy,
        blackman_coeff=opt.blackman_coeff,
        dither=cfg.dither,
    )
    if kind == "mfcc":
        return kaldi.mfcc(
            wave[None], num_ceps=cfg.num_ceps, cepstral_lifter=cfg.cepstral_lifter, **kw
        )
    return kaldi.fbank(wave[None], use_log_fbank=opt.use_log_fbank, use_power=opt.use_power, **kw)


# (id, FeatureConfig changes, KaldiOptions changes, sample rate)
CASES = [
    ("defaults", {}, {}, 16000),
    ("hamming", {"window": "hamming"}, {}, 16000),
    ("hanning", {"window": "hanning"}, {}, 16000),
    ("rectangular", {"window": "rectangular"}, {}, 16000),
    ("blackman", {"window": "blackman"}, {"blackman_coeff": 0.4}, 16000),
    (
        "40bins-13ceps-band",
        {"num_mel_bins": 40, "num_ceps": 13, "low_freq": 60.0, "high_freq": -400.0},
        {},
        16000,
    ),
    ("high-freq-absolute", {"num_mel_bins": 24, "num_ceps": 24, "high_freq": 3800.0}, {}, 8000),
    ("no-preemph-no-lifter", {"preemphasis": 0.0, "cepstral_lifter": 0.0}, {}, 16000),
    ("no-snip-edges", {}, {"snip_edges": False}, 16000),
    ("energy-floored", {}, {"use_energy": True, "energy_floor": 1.0}, 16000),
    ("windowed-energy", {}, {"use_energy": True, "raw_energy": False}, 16000),
    (
        "no-dc-no-pow2",
        {"frame_length_ms": 20.0},
        {"remove_dc_offset": False, "round_to_power_of_two": False},
        16000,
    ),
    ("shift-15ms", {"frame_shift_ms": 15.0, "frame_length_ms": 30.0}, {}, 16000),
]


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
@pytest.mark.parametrize("scale", [3000.0, 0.3], ids=["int16-range", "unit-range"])
@pytest.mark.parametrize(
    ("changes", "options", "sr"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matches_torchaudio_per_utterance(
    kind: str, scale: float, changes: dict, options: dict, sr: int
) -> None:
    cfg = FeatureConfig(**changes)
    opt = KaldiOptions(**options)
    waves = _waves(LENGTHS, scale)
    ours = get_extractor(kind, cfg, options=opt, sample_rate=sr).extract_batch(waves, sr)
    assert len(ours) == len(waves)
    window = int(sr * cfg.frame_length_ms * 0.001)
    for wave, feats in zip(waves, ours, strict=True):
        if wave.numel() < window:  # torchaudio refuses it; we give no frames
            assert feats.shape == (0, feats.shape[1])
            continue
        ref = _torchaudio(kind, wave, cfg, opt, sr)
        assert feats.dtype == torch.float32
        assert feats.shape == ref.shape, f"{wave.numel()} samples"
        assert (feats - ref).abs().max().item() < TOL, f"{wave.numel()} samples"


@pytest.mark.parametrize(
    "options",
    [{"use_log_fbank": False}, {"use_power": False}, {"use_power": False, "use_log_fbank": False}],
    ids=["linear", "magnitude", "linear-magnitude"],
)
def test_linear_and_magnitude_fbank_match_relatively(options: dict) -> None:
    cfg, opt = FeatureConfig(num_mel_bins=40), KaldiOptions(**options)
    waves = _waves((1000, 4321), 3000.0)
    for wave, feats in zip(
        waves, get_extractor("fbank", cfg, options=opt).extract_batch(waves, 16000), strict=True
    ):
        ref = _torchaudio("fbank", wave, cfg, opt, 16000)
        assert ((feats - ref).abs() / ref.abs().clamp_min(1.0)).max().item() < 1e-4


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_batch_equals_one_at_a_time(kind: str) -> None:
    # equal up to float32 rounding: the matmul kernels block rows differently per batch shape
    ex = get_extractor(kind, FeatureConfig())
    waves = _waves((16000, 399, 800, 12345, 0, 561), 3000.0, seed=3)
    batch = ex.extract_batch(waves, 16000)
    for wave, feats in zip(waves, batch, strict=True):
        alone = ex.extract_batch([wave], 16000)[0]
        assert feats.shape == alone.shape
        torch.testing.assert_close(feats, alone, rtol=0.0, atol=1e-4)


def test_small_chunks_give_the_same_features() -> None:
    waves = _waves((5000, 7000, 401), 3000.0, seed=4)
    ex = get_extractor("fbank", FeatureConfig())
    whole = ex.extract_batch(waves, 16000)
    ex.frontend.chunk_frames = 7  # chunk edges inside and between utterances
    for a, b in zip(whole, ex.extract_batch(waves, 16000), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0.0, atol=1e-4)


@pytest.mark.parametrize("length", [0, 1, 399], ids=["empty", "one-sample", "one-short"])
@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_shorter_than_a_frame_gives_no_frames(length: int, kind: str) -> None:
    ex = get_extractor(kind, FeatureConfig(num_ceps=20))
    feats = ex.extract_batch([torch.randn(length), torch.randn(400)], 16000)
    assert feats[0].shape == (0, ex.num_bins)
    assert feats[1].shape == (1, ex.num_bins)
    assert frame_count(length, FeatureConfig()) == 0
    with pytest.raises(AssertionError):  # torchaudio refuses what we map to 0 frames
        kaldi.fbank(torch.randn(1, max(length, 2)))


@pytest.mark.parametrize("length", [400, 401, 559, 560, 16000, 16080])
@pytest.mark.parametrize("snip_edges", [True, False], ids=["snip", "reflect"])
def test_frame_count_matches_torchaudio(length: int, snip_edges: bool) -> None:
    ref = kaldi.fbank(torch.randn(1, length), snip_edges=snip_edges).shape[0]
    assert frame_count(length, FeatureConfig(), snip_edges=snip_edges) == ref


def test_dither_is_seeded_and_matches_torchaudio_under_the_same_seed() -> None:
    cfg = FeatureConfig(dither=1.0)
    wave = torch.randn(8000) * 3000
    a = get_extractor("fbank", cfg, options=KaldiOptions(dither_seed=7)).extract_batch(
        [wave], 16000
    )[0]
    b = get_extractor("fbank", cfg, options=KaldiOptions(dither_seed=7)).extract_batch(
        [wave], 16000
    )[0]
    c = get_extractor("fbank", cfg, options=KaldiOptions(dither_seed=8)).extract_batch(
        [wave], 16000
    )[0]
    plain = get_extractor("fbank", FeatureConfig()).extract_batch([wave], 16000)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, plain)
    torch.manual_seed(7)  # torchaudio draws from the global generator
    ref = kaldi.fbank(wave[None], num_mel_bins=80, dither=1.0, energy_floor=0.0)
    assert (a - ref).abs().max().item() < TOL


def test_integer_and_mono_2d_inputs_are_accepted() -> None:
    ex = get_extractor("fbank", FeatureConfig())
    wave = (torch.randn(4000) * 3000).round()
    as_int = ex.extract_batch([wave.to(torch.int16), wave[None]], 16000)
    ref = ex.extract_batch([wave], 16000)[0]
    assert torch.equal(as_int[0], ref)
    assert torch.equal(as_int[1], ref)


def test_bad_waveform_shape_names_its_index() -> None:
    ex = get_extractor("fbank", FeatureConfig())
    with pytest.raises(ValueError, match="waveform 1"):
        ex.extract_batch([torch.randn(800), torch.randn(2, 800)], 16000)


def test_num_bins() -> None:
    assert get_extractor("fbank", FeatureConfig(num_mel_bins=64)).num_bins == 64
    assert (
        get_extractor("fbank", FeatureConfig(), options=KaldiOptions(use_energy=True)).num_bins
        == 81
    )
    assert get_extractor("mfcc", FeatureConfig(num_mel_bins=40, num_ceps=13)).num_bins == 13


def test_other_sample_rates_are_prepared_on_first_use() -> None:
    ex = get_extractor("mfcc", FeatureConfig(num_mel_bins=40, num_ceps=20))
    wave = torch.randn(8000) * 3000
    ours = ex.extract_batch([wave], 8000)[0]
    ref = kaldi.mfcc(
        wave[None], num_mel_bins=40, num_ceps=20, sample_frequency=8000, energy_floor=0.0
    )
    assert ours.shape == ref.shape == (98, 20)
    assert (ours - ref).abs().max().item() < TOL


def test_mel_center_frequencies_match_torchaudio_and_kaldi_formula() -> None:
    cfg = FeatureConfig(num_mel_bins=40, low_freq=20.0, high_freq=-400.0)
    ours = mel_center_frequencies(cfg, sample_rate=16000)
    _, ref = kaldi.get_mel_banks(40, 512, 16000.0, 20.0, -400.0, 100.0, -500.0, 1.0)
    assert ours.shape == (40,)
    np.testing.assert_allclose(ours, ref.numpy().ravel(), rtol=1e-5)
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731 - the Kaldi mel scale
    step = (mel(7600.0) - mel(20.0)) / 41
    assert ours[0] == pytest.approx(700.0 * (math.exp((mel(20.0) + step) / 1127.0) - 1.0), rel=1e-5)
    assert np.all(np.diff(ours) > 0)


def test_unknown_kind_lists_valid_kinds() -> None:
    with pytest.raises(KeyError, match="fbank, mfcc"):
        get_extractor("spectrogram", FeatureConfig())


def test_registering_a_kind_twice_fails() -> None:
    assert EXTRACTORS["fbank"] is Fbank
    with pytest.raises(ValueError, match="registered twice"):
        register_extractor(Fbank)


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        ("mfcc", {"num_mel_bins": 40, "num_ceps": 41}, "features.num_ceps"),
        ("fbank", {"num_mel_bins": 3}, "features.num_mel_bins"),
        ("fbank", {"window": "kaiser"}, "features.window"),
        ("fbank", {"preemphasis": 1.5}, "features.preemphasis"),
        ("fbank", {"low_freq": 9000.0}, "features.low_freq"),
        ("fbank", {"frame_length_ms": 0.05}, "features.frame_length_ms"),
        ("fbank", {"dither": -1.0}, "features.dither"),
    ],
    ids=["ceps>bins", "few-bins", "window", "preemphasis", "band", "frame-length", "dither"],
)
def test_bad_config_names_the_key(kind: str, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_extractor(kind, FeatureConfig(**changes))


def test_mfcc_refuses_linear_options() -> None:
    with pytest.raises(ValueError, match="use_log_fbank"):
        get_extractor("mfcc", FeatureConfig(), options=KaldiOptions(use_log_fbank=False))
