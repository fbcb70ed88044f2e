"""Fixed-length training crops from variable-length feature rows, for ``map_batches``.

Rows follow the features/ layout plus a speaker index: ``utt_id``, ``num_frames``,
``num_bins``, ``values`` (frames x bins, row-major) and ``label``. A batch becomes
``feats`` ``(N, T, F)`` float32 and ``label`` ``(N,)`` int64 with ``T = segment_frames``.
As in Lehmann & Stadelmann 2020 (section 3.3), a crop starts at a random offset and an utterance
shorter than the segment is looped (the speaker "repeats" the utterance), so every crop has the same
shape and batches need no padding. Ray Data re-executes the pipeline every epoch, so every epoch
sees new crops. Validation takes the deterministic centre crop instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from voxray.config import AugmentConfig
from voxray.schema import column_arrays

FEATS = "feats"
LABEL = "label"


def segment_frames(segment_s: float, frame_shift_ms: float) -> int:
    """Frames in a segment of ``segment_s`` seconds at a frame shift of ``frame_shift_ms``."""
    if segment_s <= 0 or frame_shift_ms <= 0:
        raise ValueError(
            f"train.segment_s ({segment_s}) and frame_shift_ms ({frame_shift_ms}) must be positive"
        )
    return max(1, int(round(segment_s * 1000.0 / frame_shift_ms)))


def loop_crop(feats: np.ndarray, start: int, length: int) -> np.ndarray:
    """``(length, F)`` frames from ``start`` of ``feats`` ``(T, F)``, wrapping around the end."""
    idx = (start + np.arange(length)) % feats.shape[0]
    return feats[idx]


def random_start(num_frames: int, length: int, rng: np.random.Generator) -> int:
    """A uniform start: within the utterance when it is long enough, else anywhere in the loop."""
    if num_frames >= length:
        return int(rng.integers(0, num_frames - length + 1))
    return int(rng.integers(0, num_frames))


def centre_start(num_frames: int, length: int) -> int:
    return max(0, (num_frames - length) // 2)


def _rows(batch: pa.Table | pa.RecordBatch | dict[str, Any]) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-row ``(T, F)`` float32 arrays and the int64 labels of a batch (Arrow or numpy)."""
    if isinstance(batch, dict):
        frames = np.asarray(batch["num_frames"])
        bins = np.asarray(batch["num_bins"])
        flat = [np.asarray(v, dtype=np.float32) for v in batch["values"]]
        labels = np.asarray(batch[LABEL], dtype=np.int64)
        utt_ids = [str(u) for u in batch["utt_id"]]
    else:
        frames = batch.column("num_frames").to_numpy()
        bins = batch.column("num_bins").to_numpy()
        flat = column_arrays(batch, "values")
        labels = batch.column(LABEL).to_numpy().astype(np.int64, copy=False)
        utt_ids = batch.column("utt_id").to_pylist()
    sizes = sorted(set(int(b) for b in bins))
    if len(sizes) > 1:
        raise ValueError(
            f"a training batch mixes feature sizes {sizes} (utterances {utt_ids[:3]}...)"
        )
    mats = []
    for utt, values, t, f in zip(utt_ids, flat, frames, bins, strict=True):
        t, f = int(t), int(f)
        if t < 1 or values.size != t * f:
            raise ValueError(f"utterance {utt}: {values.size} values are not {t} frames x {f} bins")
        mats.append(values.reshape(t, f))
    return mats, labels


def _normalise(crop: np.ndarray, full: np.ndarray) -> np.ndarray:
    """Normalise a crop by the mean and standard deviation of the full utterance (Lehmann &
    Stadelmann 2020)."""
    return (crop - full.mean()) / (full.std() + 1e-5)


def augment(feats: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise (with probability ``noise_prob``) and one SpecAugment-style
    frequency band and one time span per crop, filled with the crop's mean.

    Args:
        feats: ``(N, T, F)`` crops; modified in place and returned.
    """
    n, t, f = feats.shape
    noisy = rng.random(n) < cfg.noise_prob
    if noisy.any() and cfg.noise_std > 0:
        noise = rng.normal(0.0, cfg.noise_std, size=(int(noisy.sum()), t, f))
        feats[noisy] += noise.astype(np.float32)
    means = feats.mean(axis=(1, 2))
    for i in range(n):
        if cfg.freq_mask_bins > 0:
            width = int(rng.integers(0, min(cfg.freq_mask_bins, f) + 1))
            lo = int(rng.integers(0, f - width + 1))
            feats[i, :, lo : lo + width] = means[i]
        if cfg.time_mask_frames > 0:
            width = int(rng.integers(0, min(cfg.time_mask_frames, t) + 1))
            lo = int(rng.integers(0, t - width + 1))
            feats[i, lo : lo + width, :] = means[i]
    return feats


def random_crops(
    batch: pa.Table | dict[str, Any],
    segment_frames: int,
    crops_per_utt: int = 1,
    augment_cfg: AugmentConfig | None = None,
    normalise: bool = False,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """``crops_per_utt`` random crops per utterance (looped when short), optionally augmented.

    Returns ``feats`` ``(B * crops_per_utt, segment_frames, F)`` float32 and ``label``
    ``(B * crops_per_utt,)`` int64, crops of one utterance next to each other. Without a
    ``seed`` every call draws fresh crops (what training wants: new crops each epoch).
    """
    if crops_per_utt < 1:
        raise ValueError(f"train.crops_per_utt must be at least 1, got {crops_per_utt}")
    rng = np.random.default_rng(seed)
    mats, labels = _rows(batch)
    crops = []
    for m in mats:
        for _ in range(crops_per_utt):
            crop = loop_crop(m, random_start(m.shape[0], segment_frames, rng), segment_frames)
            crops.append(_normalise(crop, m) if normalise else crop)
    feats = _stack(crops, segment_frames, mats)
    if augment_cfg is not None and augment_cfg.enabled:
        feats = augment(feats, augment_cfg, rng)
    return {FEATS: feats, LABEL: np.repeat(labels, crops_per_utt)}


def centre_crops(
    batch: pa.Table | dict[str, Any], segment_frames: int, normalise: bool = False
) -> dict[str, np.ndarray]:
    """The deterministic centre crop of each utterance (looped from frame 0 when short).

    Returns ``feats`` ``(B, segment_frames, F)`` float32 and ``label`` ``(B,)`` int64.
    """
    mats, labels = _rows(batch)
    crops = []
    for m in mats:
        crop = loop_crop(m, centre_start(m.shape[0], segment_frames), segment_frames)
        crops.append(_normalise(crop, m) if normalise else crop)
    return {FEATS: _stack(crops, segment_frames, mats), LABEL: labels}


def _stack(crops: list[np.ndarray], segment_frames: int, mats: list[np.ndarray]) -> np.ndarray:
    if not crops:
        bins = mats[0].shape[1] if mats else 0
        return np.zeros((0, segment_frames, bins), dtype=np.float32)
    return np.ascontiguousarray(np.stack(crops), dtype=np.float32)


def segment_starts(num_frames: int, seg_frames: int, overlap: float) -> list[int]:
    """Start frames of overlapping segments covering an utterance (Lehmann & Stadelmann 2020: 50%
    overlap).

    An utterance shorter than one segment gives one segment (the whole utterance); the last
    segment is aligned to the end so no frames are left out.
    """
    if num_frames <= seg_frames:
        return [0]
    hop = max(1, int(round(seg_frames * (1.0 - overlap))))
    starts = list(range(0, num_frames - seg_frames + 1, hop))
    if starts[-1] + seg_frames < num_frames:
        starts.append(num_frames - seg_frames)
    return starts


def validation_split(labels: dict[str, int], fraction: float, seed: int) -> list[str]:
    """``fraction`` of each speaker's utterances (at least one, never all) for validation."""
    rng = np.random.default_rng(seed)
    held: list[str] = []
    for cls in sorted(set(labels.values())):
        utts = sorted(u for u, c in labels.items() if c == cls)
        if len(utts) < 2:
            continue
        k = min(len(utts) - 1, max(1, int(round(fraction * len(utts)))))
        held += [str(u) for u in rng.choice(utts, size=k, replace=False)]
    return sorted(held)
