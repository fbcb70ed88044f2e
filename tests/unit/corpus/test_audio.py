"""probe_audio / load_audio: every way a file can be unusable gives an AudioError naming it;
m4a through ffmpeg; resampling checked on real 8 kHz human recordings against scipy."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from voxray.config import CorpusConfig
from voxray.corpus import audio as audio_mod
from voxray.corpus.audio import AudioError, AudioInfo, load_audio, probe_audio
from voxray.io.storage import Storage

SR = 16000
CFG = CorpusConfig()
ASTERISK = Path("/usr/share/asterisk/sounds")


def _tone(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1330 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _write(root: Path, name: str, data: bytes) -> str:
    (root / name).write_bytes(data)
    return name


def test_good_wav(tmp_path: Path) -> None:
    x = _tone(1.5)
    _write(tmp_path, "ok.wav", _wav_bytes(x))
    store = Storage(str(tmp_path))
    assert probe_audio(store, "ok.wav", CFG) == AudioInfo(
        num_samples=24000, sample_rate=SR, channels=1
    )
    wave = load_audio(store, "ok.wav", CFG)
    assert wave.dtype == np.float32 and wave.shape == (24000,)
    np.testing.assert_allclose(wave, x, atol=1 / 32768)


def test_good_flac_equals_wav(tmp_path: Path) -> None:
    x = _tone(1.0)
    _write(tmp_path, "a.wav", _wav_bytes(x))
    _write(tmp_path, "a.flac", _wav_bytes(x, fmt="FLAC"))
    store = Storage(str(tmp_path))
    # both are 16-bit; the writers may round the float input differently by one step
    np.testing.assert_allclose(
        load_audio(store, "a.flac", CFG), load_audio(store, "a.wav", CFG), rtol=0, atol=1.01 / 32768
    )


def _truncated(x: np.ndarray) -> bytes:
    data = _wav_bytes(x)
    return data[: 44 + (len(data) - 44) // 2]


# name -> (file bytes, config, expected message part); each is caught by the header probe and by
# load
HEADER_CASES: dict[str, tuple[Callable[[], bytes], CorpusConfig, str]] = {
    "corrupt": (lambda: b"RIFX" + bytes(range(256)) * 4, CFG, "unreadable: Format not recognised"),
    "zero-bytes": (lambda: b"", CFG, "empty file (0 bytes)"),
    "no-samples": (lambda: _wav_bytes(np.zeros(0)), CFG, "empty: the file holds no audio samples"),
    "truncated": (
        lambda: _truncated(_tone(1.0)),
        CFG,
        "truncated: the header promises 16000 samples, the file holds 8000",
    ),
    "stereo": (lambda: _wav_bytes(_tone(1.0, channels=2)), CFG, "expected mono, got 2 channels"),
    "wrong-rate": (
        lambda: _wav_bytes(_tone(1.0, sr=8000), sr=8000),
        CFG,
        "sample rate is 8000 Hz, expected 16000 Hz",
    ),
    "too-short": (
        lambda: _wav_bytes(_tone(0.1)),
        CFG,
        "too short: 0.100 s < corpus.min_duration_s = 0.3 s",
    ),
    "over-long": (
        lambda: _wav_bytes(_tone(2.5)),
        CorpusConfig(max_duration_s=2.0),
        "too long: 2.5 s > corpus.max_duration_s = 2 s",
    ),
}


@pytest.mark.parametrize("case", list(HEADER_CASES), ids=list(HEADER_CASES))
@pytest.mark.parametrize("fn", [probe_audio, load_audio], ids=["probe", "load"])
def test_header_problems(tmp_path: Path, case: str, fn: Callable) -> None:
    make, cfg, message = HEADER_CASES[case]
    _write(tmp_path, "bad.wav", make())
    with pytest.raises(AudioError) as info:
        fn(Storage(str(tmp_path)), "bad.wav", cfg)
    assert str(info.value).startswith("bad.wav: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    "case, data, message",
    [
        ("silent", lambda: _wav_bytes(np.zeros(SR)), "silent: peak amplitude 0 is below 1e-05"),
        (
            "near-silent",
            lambda: _wav_bytes(np.full(SR, 2e-6), subtype="FLOAT"),
            "silent: peak amplitude 2e-06",
        ),
        (
            "nan",
            lambda: _wav_bytes(
                np.where(np.arange(SR) % 100 == 0, np.nan, _tone(1.0)), subtype="FLOAT"
            ),
            "160 of 16000 samples are NaN or infinite",
        ),
        (
            "inf",
            lambda: _wav_bytes(np.where(np.arange(SR) == 5, np.inf, _tone(1.0)), subtype="DOUBLE"),
            "1 of 16000 samples are NaN or infinite",
        ),
    ],
    ids=["silent", "near-silent", "nan", "inf"],
)
def test_content_problems_found_on_load(
    tmp_path: Path, case: str, data: Callable[[], bytes], message: str
) -> None:
    _write(tmp_path, f"{case}.wav", data())
    store = Storage(str(tmp_path))
    assert probe_audio(store, f"{case}.wav", CFG).num_samples == SR  # the header is fine
    with pytest.raises(AudioError, match=f"^{case}.wav: ") as info:
        load_audio(store, f"{case}.wav", CFG)
    assert message in str(info.value)


def test_truncated_flac(tmp_path: Path) -> None:
    data = _wav_bytes(_tone(2.0), fmt="FLAC")
    _write(tmp_path, "cut.flac", data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"^cut\.flac: (corrupt or )?truncated"):
        load_audio(Storage(str(tmp_path)), "cut.flac", CFG)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="^gone.wav: file not found"):
        probe_audio(Storage(str(tmp_path)), "gone.wav", CFG)


def test_streamed_wav_header_is_not_truncation(tmp_path: Path) -> None:
    """Encoders writing to a pipe leave a placeholder data size (0xFFFFFFFF): not a truncated
    file."""
    data = bytearray(_wav_bytes(_tone(1.0)))
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    _write(tmp_path, "streamed.wav", bytes(data))
    assert load_audio(Storage(str(tmp_path)), "streamed.wav", CFG).shape == (SR,)


# --------------------------------------------------------------------------- m4a


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not on PATH")


def _m4a(tmp_path: Path, name: str, x: np.ndarray, sr: int = SR) -> str:
    src = tmp_path / f"{name}.src.wav"
    src.write_bytes(_wav_bytes(x, sr=sr))
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            str(tmp_path / name),
        ],
        check=True,
    )
    return name


@needs_ffmpeg
def test_m4a_decoded_with_ffmpeg(tmp_path: Path) -> None:
    x = _tone(2.0)
    name = _m4a(tmp_path, "a.m4a", x)
    store = Storage(str(tmp_path))
    info = probe_audio(store, name, CFG)
    assert info.sample_rate == SR and info.channels == 1
    wave = load_audio(store, name, CFG)
    assert abs(wave.size - x.size) < 2048  # AAC pads to whole frames of 1024
    # a lossy codec: same tone, compared by spectrum
    f, p = signal.welch(wave, SR, nperseg=4096)
    assert abs(f[np.argmax(p)] - 220) < 5


@needs_ffmpeg
def test_m4a_stereo_and_corrupt(tmp_path: Path) -> None:
    store = Storage(str(tmp_path))
    name = _m4a(tmp_path, "st.m4a", _tone(1.0, channels=2))
    with pytest.raises(AudioError, match="expected mono, got 2 channels"):
        load_audio(store, name, CFG)
    _write(tmp_path, "junk.m4a", b"\x00\x00\x00\x18ftypM4A " + bytes(500))
    with pytest.raises(AudioError, match="^junk.m4a: unreadable: ffmpeg: "):
        probe_audio(store, "junk.m4a", CFG)


def test_m4a_without_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "a.m4a", b"whatever")
    monkeypatch.setattr(audio_mod.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="^a.m4a: m4a needs ffmpeg on PATH"):
        load_audio(Storage(str(tmp_path)), "a.m4a", CFG)


# --------------------------------------------------------------------------- resampling on real
# speech


PROMPT = "demo-echotest.wav"
#: Debian's *-wav packages install under the speaker's name; the language link comes with
#: the recommended asterisk-core-sounds-<lang> package, which --no-install-recommends skips.
SPEAKERS = {"en": "en_US_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo"}


@pytest.mark.parametrize("voice", ["en", "fr", "it"], ids=list(SPEAKERS.values()))
def test_resampling_real_recordings(voice: str) -> None:
    folder = next(
        (d for d in (ASTERISK / voice, ASTERISK / SPEAKERS[voice]) if (d / PROMPT).is_file()), None
    )
    if folder is None:
        pytest.skip(f"asterisk prompts not installed ({ASTERISK / SPEAKERS[voice] / PROMPT})")
    store = Storage(str(folder))
    with pytest.raises(AudioError, match="sample rate is 8000 Hz, expected 16000 Hz"):
        load_audio(store, PROMPT, CFG)
    wave = load_audio(store, PROMPT, CorpusConfig(resample=True))
    orig, sr = sf.read(str(folder / PROMPT), dtype="float32")
    assert sr == 8000
    assert wave.shape == (2 * orig.size,)  # duration kept
    ref = signal.resample_poly(orig.astype(np.float64), 2, 1)
    # spectral content below 4 kHz agrees with scipy's polyphase resampler (within 1 dB, 100-3600
    # Hz)
    f, p_ours = signal.welch(wave, SR, nperseg=1024)
    _, p_ref = signal.welch(ref, SR, nperseg=1024)
    band = (f >= 100) & (f <= 3600)
    diff_db = 10 * np.log10(p_ours[band] / p_ref[band])
    assert np.max(np.abs(diff_db)) < 1.0, np.max(np.abs(diff_db))
    # and almost nothing above the original Nyquist
    assert p_ours[f > 4200].sum() < 1e-3 * p_ours.sum()
    # the waveforms themselves agree: both are band-limited interpolations
    assert np.corrcoef(wave, ref)[0, 1] > 0.99
