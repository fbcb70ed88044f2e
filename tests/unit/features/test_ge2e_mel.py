"""The ge2e_mel front-end against resemblyzer's own code: the frames kept equal its partial
slicing for every length, the mel values equal ``wav_to_mel_spectrogram`` of the padded wave,
the bin frequencies equal librosa's, and a batch gives what each wave gives alone."""

from __future__ import annotations

import numpy as np
import pytest

from voxray.features import EXTRACTORS, FrontEndSpec
from voxray.features.ge2e_mel import Ge2eMel, Ge2eMelParams, partial_frame_count, partial_starts

resemblyzer = pytest.importorskip("resemblyzer")
librosa = pytest.importorskip("librosa")
from resemblyzer import audio as rz_audio  # noqa: E402
from resemblyzer.voice_encoder import VoiceEncoder  # noqa: E402

P = Ge2eMelParams()


def _voice(n: int, rng: np.random.Generator) -> np.ndarray:
    """A gliding harmonic tone in noise, loud enough that volume normalisation leaves it."""
    t = np.arange(n) / 16000
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.08
    return (x + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", [0, 1, 159, 160, 8000, 25439, 25600, 25761, 38000, 38400, 99999])
def test_frame_count_is_resemblyzers_partial_slicing(n: int) -> None:
    _, mel_slices = VoiceEncoder.compute_partial_slices(n, 1.3, 0.75)
    t = partial_frame_count(n, P)
    assert t == mel_slices[-1].stop
    starts = partial_starts(t, P.partial_frames, P.frame_step)
    assert [s.start for s in mel_slices] == list(starts)


def test_mel_equals_resemblyzer(rng: np.random.Generator) -> None:
    lengths = [12000, 25600, 30001, 47999, 80077]
    waves = [_voice(n, rng) for n in lengths]
    out = Ge2eMel(P).compute(waves, 16000)  # one batch, padded to the longest
    for w, m in zip(waves, out, strict=True):
        wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(w.size, 1.3, 0.75)
        padded = np.pad(w, (0, max(0, wav_slices[-1].stop - w.size)))
        ref = rz_audio.wav_to_mel_spectrogram(padded)[: mel_slices[-1].stop]
        assert m.shape == ref.shape == (mel_slices[-1].stop, 40)
        assert np.abs(m - ref).max() <= 1e-5 * ref.max()
        alone = Ge2eMel(P).compute([w], 16000)[0]
        np.testing.assert_allclose(alone, m, rtol=1e-5, atol=1e-6 * ref.max())


def test_quiet_wave_is_raised_to_minus_30_dbfs(rng: np.random.Generator) -> None:
    w = _voice(32000, rng) * 0.01
    ours = Ge2eMel(P).compute([w], 16000)[0]
    louder = rz_audio.normalize_volume(w, -30, increase_only=True)
    ref = Ge2eMel(P).compute([louder], 16000)[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())
    assert ours.max() > 10 * rz_audio.wav_to_mel_spectrogram(w).max()  # the gain was applied


def test_bin_frequencies_are_librosas() -> None:
    ours = Ge2eMel(P).bin_frequencies(16000)
    ref = librosa.mel_frequencies(n_mels=42, fmin=0.0, fmax=8000.0)[1:-1]
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_registered_and_other_rates_refused() -> None:
    assert EXTRACTORS["ge2e_mel"] is Ge2eMel
    ex = FrontEndSpec("ge2e_mel", P).build()
    assert ex.num_bins == 40 and ex.frame_shift_ms == 10.0
    with pytest.raises(ValueError, match="ge2e_mel: .* expects 16000 Hz audio, got 8000 Hz"):
        ex.compute([np.zeros(8000, np.float32)], 8000)
