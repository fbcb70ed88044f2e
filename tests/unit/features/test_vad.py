"""Kaldi energy VAD: a hand-worked case, a literal port of ComputeVadEnergy, real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from voxray.config import FeatureConfig
from voxray.features import (
    KaldiOptions,
    energy_vad,
    feature_energy,
    frame_log_energy,
    get_extractor,
    keep_min_frames,
)

# Debian's asterisk-core-sounds-en-wav installs under the speaker's name ("en" is a link made
# by a recommended package)
PROMPTS = next(
    (
        p
        for p in (
            Path("/usr/share/asterisk/sounds/en"),
            Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
        )
        if p.is_dir()
    ),
    Path("/usr/share/asterisk/sounds/en"),
)


def kaldi_compute_vad(
    log_energy: np.ndarray, threshold: float, mean_scale: float, context: int, proportion: float
) -> np.ndarray:
    """ivector/voice-activity-detection.cc, ComputeVadEnergy, line by line (BaseFloat = float32)."""
    e = log_energy.astype(np.float32)
    T = len(e)
    energy_threshold = np.float32(threshold)
    if mean_scale != 0.0:
        energy_threshold += (
            np.float32(mean_scale) * np.float32(e.sum(dtype=np.float32)) / np.float32(T)
        )
    out = np.zeros(T, dtype=bool)
    for t in range(T):
        num_count = den_count = 0
        for t2 in range(t - context, t + context + 1):
            if 0 <= t2 < T:
                den_count += 1
                if e[t2] > energy_threshold:
                    num_count += 1
        out[t] = np.float32(num_count) >= np.float32(den_count) * np.float32(proportion)
    return out


def test_hand_worked_example() -> None:
    e = torch.tensor([1.0, 10.0, 10.0, 1.0, 10.0, 1.0])
    # mean 5.5 -> threshold 5.5 + 0.5 * 5.5 = 8.25 -> above: 0 1 1 0 1 0
    assert energy_vad(e).tolist() == [False, True, True, False, True, False]
    # context 1, proportion 0.6: windows {0,1} 1/2, {0,1,2} 2/3, {1,2,3} 2/3, {2,3,4} 2/3, {3,4,5}
    # 1/3, {4,5} 1/2
    assert energy_vad(e, frames_context=1).tolist() == [False, True, True, True, False, False]
    # without the mean term the threshold is 5.5 itself; with a higher one nothing is speech
    assert energy_vad(e, mean_scale=0.0).tolist() == [False, True, True, False, True, False]
    assert not energy_vad(e, threshold=20.0).any()


def test_proportion_tie_counts_as_speech() -> None:
    # 3 of 5 frames above threshold: 3 >= 5 * 0.6 holds in float32, as in Kaldi
    e = torch.tensor([0.0, 9.0, 9.0, 9.0, 0.0])
    assert energy_vad(e, threshold=5.0, mean_scale=0.0, frames_context=2)[2].item()


@pytest.mark.parametrize(
    ("threshold", "mean_scale", "context", "proportion"),
    [
        (5.5, 0.5, 0, 0.6),
        (5.0, 0.5, 2, 0.6),
        (2.0, 0.0, 3, 0.3),
        (8.0, 1.0, 1, 0.9),
        (5.5, 0.5, 10, 0.5),
    ],
    ids=["default", "ctx2", "no-mean", "strict", "wide"],
)
def test_matches_kaldi_rule_on_random_energies(
    threshold: float, mean_scale: float, context: int, proportion: float, rng: np.random.Generator
) -> None:
    for length in (1, 2, 7, 150):
        e = rng.normal(12.0, 4.0, size=length).astype(np.float32)
        ours = energy_vad(torch.from_numpy(e), threshold, mean_scale, context, proportion).numpy()
        np.testing.assert_array_equal(
            ours, kaldi_compute_vad(e, threshold, mean_scale, context, proportion)
        )


def test_empty_and_bad_arguments() -> None:
    assert energy_vad(torch.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="proportion"):
        energy_vad(torch.zeros(3), proportion=1.0)
    with pytest.raises(ValueError, match="frames_context"):
        energy_vad(torch.zeros(3), frames_context=-1)
    with pytest.raises(ValueError, match=r"shape \(T,\)"):
        energy_vad(torch.zeros(3, 2))


def test_keep_min_frames_adds_the_loudest() -> None:
    e = torch.tensor([1.0, 5.0, 3.0, 4.0, 2.0])
    none = torch.zeros(5, dtype=torch.bool)
    assert keep_min_frames(none, e, 2).tolist() == [False, True, False, True, False]
    assert keep_min_frames(none, e, 50).all()
    some = torch.tensor([True, False, False, False, True])
    assert torch.equal(keep_min_frames(some, e, 2), some)


def test_frame_log_energy_is_kaldi_c0_with_use_energy() -> None:
    waves = [torch.randn(n) * 3000 for n in (4000, 399, 16123)]
    ours = frame_log_energy(waves, 16000, FeatureConfig())
    assert ours[1].shape == (0,)
    for wave, e in zip(waves, ours, strict=True):
        if wave.numel() >= 400:
            ref = kaldi.mfcc(wave[None], use_energy=True, energy_floor=0.0)[:, 0]
            torch.testing.assert_close(e, ref, rtol=0.0, atol=1e-4)
    # the extractor returns the same energies alongside its features
    _, energies = get_extractor("fbank", FeatureConfig()).extract_with_energy(waves, 16000)
    for a, b in zip(ours, energies, strict=True):
        torch.testing.assert_close(a, b, rtol=0.0, atol=1e-5)


def test_energy_floor_applies() -> None:
    e = frame_log_energy(
        [torch.zeros(800)], 16000, FeatureConfig(), options=KaldiOptions(energy_floor=1.0)
    )[0]
    assert torch.equal(e, torch.zeros_like(e))  # log(max(0, eps)) floored at log(1)


def test_feature_energy_is_log_of_summed_mel_energies() -> None:
    feats = torch.randn(6, 10)
    np.testing.assert_allclose(
        feature_energy(feats).numpy(), np.log(np.exp(feats.double().numpy()).sum(axis=1)), rtol=1e-5
    )
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        feature_energy(torch.zeros(4))


def _prompt(name: str) -> torch.Tensor:
    path = PROMPTS / f"{name}.wav"
    if not path.is_file():
        pytest.skip(f"{path} not installed")
    audio, sr = sf.read(path, dtype="float32")
    return AF.resample(torch.from_numpy(audio), sr, 16000) * 32768.0


@pytest.mark.parametrize("name", ["hello-world", "vm-goodbye", "agent-pass"])
def test_real_prompt_silence_is_not_speech(name: str) -> None:
    wave = _prompt(name)
    energy = frame_log_energy([wave], 16000, FeatureConfig())[0]
    speech = energy_vad(energy)
    # leading and trailing silence of the prompt are non-speech, the middle is mostly speech
    assert not speech[:3].any()
    assert not speech[-3:].any()
    assert speech[len(speech) // 4 : 3 * len(speech) // 4].float().mean() > 0.6
    # the fbank-derived energy gives (nearly) the same decisions
    feats = get_extractor("fbank", FeatureConfig()).extract_batch([wave], 16000)[0]
    assert (energy_vad(feature_energy(feats)) == speech).float().mean() > 0.9


def test_real_prompt_padded_with_silence_loses_the_padding() -> None:
    wave = _prompt("hello-world")
    pad = torch.randn(8000) * 3.0  # 0.5 s of near-silence (about -80 dBFS) on each side
    padded = torch.cat((pad, wave, pad))
    speech = energy_vad(frame_log_energy([padded], 16000, FeatureConfig())[0])
    pad_frames = 8000 // 160
    assert not speech[: pad_frames - 2].any()
    assert not speech[-(pad_frames - 2) :].any()
    assert speech.sum() > 0.5 * (len(speech) - 2 * pad_frames)
