"""Render one synthetic utterance: espeak-ng voice, speaker coloration, then a video's channel.

A speaker is an espeak-ng voice (language = accent, variant = gender and timbre, pitch,
speed) plus two things espeak alone does not give: a vocal-tract-length factor (the
22.05 kHz output is resampled as if it had been recorded at ``22050 * 441 / vtl_q`` Hz,
which scales every formant and F0 by ``441 / vtl_q``) and a fixed EQ (two formant-like
peaks, an anti-resonance and a spectral tilt). A video is a recording channel shared by
all its utterances: band limits, an EQ peak, a room impulse response, a gain and coloured
noise at a fixed SNR. Everything random is drawn from seeds in the specs, so the same
spec renders the same samples in any process.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
_UP = 320  # 22050 * 320 / 441 = 16000
MIN_S, MAX_S = 2.0, 5.0
_TARGET_DBFS = -23.0


@dataclass(frozen=True)
class VoiceSpec:
    """One speaker's voice. ``formants``: (centre Hz, gain dB, Q) peaks; ``notch``: the same,
    negative gain."""

    language: str
    variant: str
    pitch: int
    speed: int
    amplitude: int
    vtl_q: int
    formants: tuple[tuple[float, float, float], ...]
    notch: tuple[float, float, float]
    tilt_db: float


@dataclass(frozen=True)
class ChannelSpec:
    """One video's recording channel; ``rt60_s`` 0 means no reverberation."""

    seed: int
    gain_db: float
    snr_db: float
    noise_beta: float
    rt60_s: float
    drr_db: float
    highpass_hz: float
    lowpass_hz: float
    eq: tuple[float, float, float]
    pitch_offset: int
    speed_offset: int


@dataclass(frozen=True)
class UttSpec:
    """One utterance: where it goes, what is said, per-utterance prosody jitter and noise seed."""

    rel_path: str
    text: str
    pitch_jitter: int
    speed_jitter: int
    seed: int


class SynthError(RuntimeError):
    """espeak-ng is missing or failed; the message names the command."""


def espeak(voice: VoiceSpec, channel: ChannelSpec, utt: UttSpec) -> np.ndarray:
    """espeak-ng's 22.05 kHz output for the utterance, float32 in [-1, 1], shape ``(N,)``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SynthError(
            "synthesising the demo corpus needs the espeak-ng binary on PATH (apt-get install "
            "espeak-ng)"
        )
    pitch = int(np.clip(voice.pitch + channel.pitch_offset + utt.pitch_jitter, 0, 99))
    speed = int(np.clip(voice.speed + channel.speed_offset + utt.speed_jitter, 90, 260))
    cmd = [
        exe,
        "-v",
        f"{voice.language}+{voice.variant}",
        "-p",
        str(pitch),
        "-s",
        str(speed),
        "-a",
        str(voice.amplitude),
        "--stdout",
        utt.text,
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or len(proc.stdout) < 64:
        raise SynthError(
            f"{' '.join(cmd[:-1])} '...' failed: {proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    raw = proc.stdout
    at = raw.find(b"data")
    rate = struct.unpack("<I", raw[24:28])[0]
    if raw[:4] != b"RIFF" or at < 0 or rate != ESPEAK_RATE:
        raise SynthError(f"espeak-ng wrote an unexpected stream (rate {rate}) for {utt.rel_path}")
    pcm = np.frombuffer(raw[at + 8 : at + 8 + (len(raw) - at - 8) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def render_utterance(voice: VoiceSpec, channel: ChannelSpec, utt: UttSpec) -> np.ndarray:
    """The finished utterance at 16 kHz, float32, 2-5 s, shape ``(N,)``."""
    rng = np.random.default_rng(utt.seed)
    x = _trim(espeak(voice, channel, utt), ESPEAK_RATE)
    g = np.gcd(_UP, voice.vtl_q)
    x = signal.resample_poly(x, _UP // g, voice.vtl_q // g)
    x = signal.sosfilt(speaker_sos(voice), x)
    x = _fit_length(x, rng)
    x = apply_channel(x, channel, rng)
    return x.astype(np.float32)


def speaker_sos(voice: VoiceSpec) -> np.ndarray:
    """The speaker's fixed coloration as second-order sections at 16 kHz."""
    sections = [_peaking(f, g, q) for f, g, q in voice.formants]
    sections.append(_peaking(*voice.notch))
    sections.append(_high_shelf(1000.0, voice.tilt_db))
    return np.vstack(sections)


def apply_channel(x: np.ndarray, channel: ChannelSpec, rng: np.random.Generator) -> np.ndarray:
    """Room, microphone band and EQ, level, then noise at the channel's SNR; ``(N,)`` ->
    ``(N,)``."""
    n = x.size
    if channel.rt60_s > 0:
        x = signal.fftconvolve(x, room_impulse_response(channel), mode="full")[:n]
    sos = np.vstack(
        [
            signal.butter(2, channel.highpass_hz, "highpass", fs=SAMPLE_RATE, output="sos"),
            signal.butter(4, channel.lowpass_hz, "lowpass", fs=SAMPLE_RATE, output="sos"),
            _peaking(*channel.eq),
        ]
    )
    x = signal.sosfilt(sos, x)
    active = x[np.abs(x) > 0.05 * np.max(np.abs(x))]
    speech_rms = float(np.sqrt(np.mean(active**2))) if active.size else 1.0
    x = x * (10 ** ((_TARGET_DBFS + channel.gain_db) / 20) / speech_rms)
    noise = coloured_noise(n, channel.noise_beta, rng)
    noise_rms = 10 ** ((_TARGET_DBFS + channel.gain_db - channel.snr_db) / 20)
    x = x + noise * noise_rms
    peak = float(np.max(np.abs(x)))
    return x * (0.98 / peak) if peak > 0.98 else x


def room_impulse_response(channel: ChannelSpec) -> np.ndarray:
    """A synthetic RIR: the direct path, then exponentially decaying noise (RT60, DRR)."""
    rng = np.random.default_rng(channel.seed)
    length = int(min(channel.rt60_s, 0.6) * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / channel.rt60_s)
    tail[: int(0.003 * SAMPLE_RATE)] = 0.0
    tail *= 10 ** (-channel.drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f^beta (0 white, 1 pink, 2 brown), shape ``(n,)``.

    Shaped in the frequency domain at a fast FFT length (utterance lengths are arbitrary).
    """
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = sp_fft.rfftfreq(m, 1 / SAMPLE_RATE)
    spec *= 1.0 / np.maximum(f, 20.0) ** (beta / 2)
    x = sp_fft.irfft(spec, m)[:n]
    return x / np.sqrt(np.mean(x**2))


def _trim(x: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading/trailing silence, keeping 0.1 s before and 0.2 s after the speech."""
    hop = rate // 100
    frames = x[: x.size // hop * hop].reshape(-1, hop)
    energy = np.mean(frames**2, axis=1)
    active = np.flatnonzero(energy > 1e-4 * energy.max()) if energy.size else np.array([], int)
    if active.size == 0:
        return x
    start = max(0, (active[0] - 10) * hop)
    stop = min(x.size, (active[-1] + 21) * hop)
    return x[start:stop]


def _fit_length(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Clamp to 2-5 s: a long utterance is cut (with a 30 ms fade), a short one padded with
    pause."""
    lo, hi = int(MIN_S * SAMPLE_RATE), int(MAX_S * SAMPLE_RATE)
    if x.size > hi:
        x = x[:hi].copy()
        fade = int(0.03 * SAMPLE_RATE)
        x[-fade:] *= np.linspace(1.0, 0.0, fade)
    elif x.size < lo:
        before = int(rng.integers(0, lo - x.size + 1))
        x = np.concatenate([np.zeros(before), x, np.zeros(lo - x.size - before)])
    return x


def _peaking(freq: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ-cookbook peaking EQ biquad at 16 kHz as one SOS row ``(6,)``."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.concatenate([np.divide(b, den[0]), np.divide(den, den[0])])[None, :]


def _high_shelf(freq: float, gain_db: float) -> np.ndarray:
    """RBJ-cookbook high shelf (slope 1) at 16 kHz: a spectral tilt above ``freq``; ``(1, 6)``."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w) / 2 * np.sqrt(2)
    cw, sa = np.cos(w), 2 * np.sqrt(a) * alpha
    b = [
        a * ((a + 1) + (a - 1) * cw + sa),
        -2 * a * ((a - 1) + (a + 1) * cw),
        a * ((a + 1) + (a - 1) * cw - sa),
    ]
    den = [(a + 1) - (a - 1) * cw + sa, 2 * ((a - 1) - (a + 1) * cw), (a + 1) - (a - 1) * cw - sa]
    return np.concatenate([np.divide(b, den[0]), np.divide(den, den[0])])[None, :]
