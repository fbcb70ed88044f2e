"""Probe and decode corpus audio (wav/flac via soundfile, m4a via ffmpeg), local or s3://.

``probe_audio`` reads a header only (plus the file size, to catch a WAV whose header
promises more samples than the file holds); the manifest stage runs it on every file.
``load_audio`` decodes and also checks the samples (NaN/inf, silence). Both raise
``AudioError`` with a reason a person can act on, naming the file: the stages quarantine
that file and go on. Storage failures (``StorageError``) are not AudioErrors: an outage
must fail the stage, not quarantine the corpus.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from typing import IO

import numpy as np
import soundfile as sf

from voxray.config import CorpusConfig
from voxray.io.storage import Storage

#: a peak below this (about -100 dBFS) is taken as digital silence.
SILENCE_PEAK = 1e-5
_STREAMED_SIZES = (0, 0xFFFFFFFF)  # data sizes written by encoders that could not seek back
_MAX_CHUNKS = 64


class AudioError(ValueError):
    """A file that cannot be used as an utterance; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    num_samples: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True)
class _WavHeader:
    channels: int
    sample_rate: int
    block_align: int
    data_offset: int
    data_size: int


def probe_audio(storage: Storage, rel_path: str, cfg: CorpusConfig) -> AudioInfo:
    """Header facts of one file, checked against ``cfg`` (mono, rate, duration, not truncated).

    AAC has no exact sample count in its header, so ``.m4a`` files are decoded (ffmpeg).
    """
    if rel_path.lower().endswith(".m4a"):
        _, info = decode_ffmpeg(storage, rel_path)
    else:
        try:
            with storage.open(rel_path, "rb") as f:
                info = _probe_soundfile(f, rel_path)
        except FileNotFoundError:
            raise AudioError(f"{rel_path}: file not found") from None
    _check_format(rel_path, info, cfg)
    return info


def load_audio(storage: Storage, rel_path: str, cfg: CorpusConfig) -> np.ndarray:
    """The utterance as float32 mono samples at ``cfg.sample_rate``, shape ``(num_samples,)``.

    Other rates are resampled (torchaudio) when ``cfg.resample`` is set, rejected otherwise.
    """
    if rel_path.lower().endswith(".m4a"):
        data, info = decode_ffmpeg(storage, rel_path)
        _check_format(rel_path, info, cfg)
    else:
        try:
            raw = storage.read_bytes(rel_path)
        except FileNotFoundError:
            raise AudioError(f"{rel_path}: file not found") from None
        buf = io.BytesIO(raw)
        info = _probe_soundfile(buf, rel_path)
        _check_format(rel_path, info, cfg)
        buf.seek(0)
        data = _read_soundfile(buf, rel_path, info.num_samples)
    wave = _check_samples(rel_path, data[:, 0])
    if info.sample_rate != cfg.sample_rate:
        wave = resample(wave, info.sample_rate, cfg.sample_rate)
    return wave


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling, ``(N,)`` -> ``(N * new / orig,)``.

    torchaudio's Kaiser-windowed sinc with 16 zero crossings: its default (6, Hann) is
    already 1.5 dB down at 85% of the lower Nyquist, and speaker cues live up there too.
    """
    import torch
    import torchaudio.functional as AF

    out = AF.resample(
        torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
        orig_rate,
        new_rate,
        lowpass_filter_width=16,
        rolloff=0.99,
        resampling_method="sinc_interp_kaiser",
    )
    return out.numpy().astype(np.float32, copy=False)


# --------------------------------------------------------------------------- checks


def _check_format(rel: str, info: AudioInfo, cfg: CorpusConfig) -> None:
    if info.num_samples <= 0:
        raise AudioError(f"{rel}: empty: the file holds no audio samples")
    if info.channels != 1:
        raise AudioError(f"{rel}: expected mono, got {info.channels} channels")
    if info.sample_rate != cfg.sample_rate and not cfg.resample:
        raise AudioError(
            f"{rel}: sample rate is {info.sample_rate} Hz, expected {cfg.sample_rate} Hz "
            "(set corpus.resample=true to resample)"
        )
    duration = info.duration_s
    if duration < cfg.min_duration_s:
        raise AudioError(
            f"{rel}: too short: {duration:.3f} s < corpus.min_duration_s = {cfg.min_duration_s:g} s"
        )
    if cfg.max_duration_s > 0 and duration > cfg.max_duration_s:
        raise AudioError(
            f"{rel}: too long: {duration:.1f} s > corpus.max_duration_s = {cfg.max_duration_s:g} s"
        )


def _check_samples(rel: str, wave: np.ndarray) -> np.ndarray:
    bad = int(np.count_nonzero(~np.isfinite(wave)))
    if bad:
        raise AudioError(f"{rel}: {bad} of {wave.size} samples are NaN or infinite")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"{rel}: silent: peak amplitude {peak:.3g} is below {SILENCE_PEAK:g}")
    return wave


# --------------------------------------------------------------------------- wav / flac


def _probe_soundfile(f: IO[bytes], rel: str) -> AudioInfo:
    """Header facts via libsndfile; a WAV's data chunk is checked against the file size."""
    size = f.seek(0, io.SEEK_END)
    if size == 0:
        raise AudioError(f"{rel}: empty file (0 bytes)")
    f.seek(0)
    try:
        info = sf.info(f)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(f"{rel}: unreadable: {getattr(exc, 'error_string', exc)}") from None
    facts = AudioInfo(
        num_samples=int(info.frames), sample_rate=int(info.samplerate), channels=int(info.channels)
    )
    f.seek(0)
    header = _wav_header(f)
    # libsndfile quietly shortens a truncated WAV to what is present: compare with the header
    if header is not None and header.data_size not in _STREAMED_SIZES and header.block_align > 0:
        present = size - header.data_offset
        if header.data_size > present + 1:  # +1: a pad byte the writer may have left out
            raise AudioError(
                f"{rel}: truncated: the header promises "
                f"{header.data_size // header.block_align} samples, "
                f"the file holds {max(present, 0) // header.block_align}"
            )
    return facts


def _read_soundfile(buf: IO[bytes], rel: str, expected: int) -> np.ndarray:
    """All samples ``(N, channels)`` float32; fewer than the header promised is truncation."""
    try:
        with sf.SoundFile(buf) as snd:
            data = snd.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(
            f"{rel}: corrupt or truncated: {getattr(exc, 'error_string', exc)} "
            f"(header promises {expected} samples)"
        ) from None
    if data.shape[0] < expected:
        raise AudioError(
            f"{rel}: truncated: the header promises {expected} samples, decoded {data.shape[0]}"
        )
    return data


def _wav_header(f: IO[bytes]) -> _WavHeader | None:
    """The fmt and data chunk facts of a RIFF/WAVE stream, or None for any other format."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    channels = rate = block_align = 0
    offset = 12
    for _ in range(_MAX_CHUNKS):
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        offset += 8
        if cid == b"fmt ":
            fmt = f.read(min(csize, 16))
            if len(fmt) < 16:
                return None
            _, channels, rate, _, block_align = struct.unpack("<HHIIH", fmt[:14])
        elif cid == b"data":
            return _WavHeader(channels, rate, block_align, offset, csize)
        offset += csize + (csize & 1)
        f.seek(offset)
    return None


# --------------------------------------------------------------------------- m4a


def decode_ffmpeg(storage: Storage, rel: str) -> tuple[np.ndarray, AudioInfo]:
    """Decode with the ffmpeg binary to float WAV on a pipe: samples ``(N, channels)`` and facts
    (m4a here; also the raw GSM prompts ``voxray.corpus.real_voices`` reads)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            f"{rel}: m4a needs ffmpeg on PATH to decode "
            "(install ffmpeg, or convert the corpus to wav/flac)"
        )
    if storage.is_s3:
        try:
            raw = storage.read_bytes(rel)
        except FileNotFoundError:
            raise AudioError(f"{rel}: file not found") from None
        with tempfile.NamedTemporaryFile(suffix=posixpath.splitext(rel)[1]) as tmp:
            tmp.write(raw)
            tmp.flush()
            return _run_ffmpeg(ffmpeg, tmp.name, rel, len(raw))
    path = storage.path(rel)
    try:
        size = storage.fs.size(path)
    except FileNotFoundError:
        raise AudioError(f"{rel}: file not found") from None
    return _run_ffmpeg(ffmpeg, path, rel, int(size))


def _run_ffmpeg(ffmpeg: str, path: str, rel: str, size: int) -> tuple[np.ndarray, AudioInfo]:
    if size == 0:
        raise AudioError(f"{rel}: empty file (0 bytes)")
    cmd = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        path,
        "-vn",
        "-map",
        "0:a:0",
        "-c:a",
        "pcm_f32le",
        "-f",
        "wav",
        "pipe:1",
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
        raise AudioError(f"{rel}: unreadable: ffmpeg: {last.replace(path, rel)}")
    if "partial file" in err:
        raise AudioError(f"{rel}: truncated: ffmpeg: {err.splitlines()[-1].replace(path, rel)}")
    buf = io.BytesIO(proc.stdout)
    header = _wav_header(buf)
    if header is None or header.block_align == 0:
        raise AudioError(f"{rel}: unreadable: ffmpeg produced no audio")
    data = np.frombuffer(proc.stdout[header.data_offset :], dtype="<f4")
    data = data[: data.size - data.size % header.channels].reshape(-1, header.channels)
    return data, AudioInfo(
        num_samples=data.shape[0], sample_rate=header.sample_rate, channels=header.channels
    )
