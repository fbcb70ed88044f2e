"""Multi-speaker localisation and recognition (Li et al. 2022 §4.3-4.4, Table 2).

An utterance of the target speaker A is concatenated with utterances of interfering speakers
B (and C) in the forms A-B, A-B-A, B-A-B and A-B-C. A saliency map that explains the target
should (i) localise A's frames and (ii) when used as a mask (element-wise multiplication,
Li et al. 2022) keep, or improve, top-1 recognition of A. Maps of several layers combine by
element-wise average ('S4+S3'). Features and maps are ``(T, F)`` per utterance, ``(B, T, F)``
batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from voxray.eval.faithfulness import Curve, masking_curves, top1_score
from voxray.mask.rules import Normalisation, layer_average, normalise

CASES: tuple[str, ...] = ("A-B", "A-B-A", "B-A-B", "A-B-C")
TARGET = "A"
#: the case of Li et al. 2022's deletion / insertion curves on mixtures (§4.3, Fig. 4).
CURVE_CASE = "B-A-B"
#: the condition of the random (un)masking reference among the mixture curves.
RANDOM = "random"
Segment = npt.NDArray[np.floating]
#: ``saliency_fn(model, feats (B, T, F), targets (B,)) -> {method: {layer: maps (B, T, F)}}``;
#: methods without layers use the layer name "".
Maps = Union[Tensor, npt.NDArray[np.floating]]
SaliencyFn = Callable[[nn.Module, Tensor, Tensor], Mapping[str, Mapping[str, Maps]]]


def case_letters(case: str) -> list[str]:
    if case not in CASES:
        raise ValueError(f"multi-speaker case {case!r} is not one of {', '.join(CASES)}")
    return case.split("-")


def build_concatenation(
    case: str, segments: Mapping[str, Segment | Sequence[Segment]]
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.bool_]]:
    """Concatenate the segments in the order of ``case``: ``(feats (T, F), target_mask (T,))``.

    ``segments`` maps each letter to one ``(T_i, F)`` array, used for every occurrence of the
    letter, or to a sequence with one array per occurrence (A-B-A with two A utterances).
    ``target_mask`` is True on the frames of A.
    """
    letters = case_letters(case)
    missing = sorted(set(letters) - set(segments))
    if missing:
        raise ValueError(f"multi-speaker case {case}: no segment for {', '.join(missing)}")
    used: dict[str, int] = {}
    parts: list[np.ndarray] = []
    for letter in letters:
        value = segments[letter]
        k = used.get(letter, 0)
        used[letter] = k + 1
        if isinstance(value, np.ndarray):
            seg = value
        elif k < len(value):
            seg = np.asarray(value[k])
        else:
            raise ValueError(
                f"multi-speaker case {case}: {letter} occurs {letters.count(letter)} times but "
                f"{len(value)} segment(s) were given"
            )
        if seg.ndim != 2 or seg.shape[0] == 0:
            raise ValueError(
                f"multi-speaker case {case}: segment {letter} must be a non-empty (T, F) array, "
                f"got shape {seg.shape}"
            )
        parts.append(seg)
    bins = {p.shape[1] for p in parts}
    if len(bins) != 1:
        raise ValueError(
            f"multi-speaker case {case}: segments have different numbers of bins {sorted(bins)}"
        )
    feats = np.concatenate(parts, axis=0)
    target = np.concatenate(
        [np.full(len(p), c == TARGET) for p, c in zip(parts, letters, strict=True)]
    )
    return feats, target


def localise(saliency: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Frames ``(T,)`` attributed to the target: mean saliency over bins above its median."""
    s = np.asarray(saliency, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"localise: expected a (T, F) saliency map, got shape {s.shape}")
    frame = s.mean(axis=1)
    return frame > np.median(frame)


def precision_recall(predicted: npt.ArrayLike, target: npt.ArrayLike) -> tuple[float, float]:
    """Frame-level precision and recall of ``predicted`` against ``target`` (both ``(T,)``);
    0 where undefined (nothing predicted, or no target frames)."""
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(target, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"precision_recall: predicted {p.shape} and target {t.shape} differ")
    hits = float((p & t).sum())
    return (hits / p.sum() if p.any() else 0.0, hits / t.sum() if t.any() else 0.0)


def masked_top1(
    model: nn.Module, feats: Tensor, saliency: Tensor, target: Tensor
) -> npt.NDArray[np.bool_]:
    """Top-1 correctness ``(B,)`` after masking ``feats`` ``(B, T, F)`` by element-wise
    multiplication with ``saliency`` ``(B, T, F)`` (normalised to [0, 1]) (Li et al. 2022 §4.4)."""
    if feats.shape != saliency.shape:
        raise ValueError(
            f"masked_top1: features {tuple(feats.shape)} and saliency {tuple(saliency.shape)} "
            "differ"
        )
    return top1(model, feats * saliency.to(feats), target)


def top1(model: nn.Module, feats: Tensor, target: Tensor) -> npt.NDArray[np.bool_]:
    """Top-1 correctness ``(B,)`` of ``model`` on ``feats`` ``(B, T, F)`` for labels ``(B,)``."""
    with torch.no_grad():
        pred = model(feats).argmax(dim=1).cpu()
    return (pred == target.cpu()).numpy()


@dataclass(frozen=True)
class MultiSpeakerRow:
    """One cell of Li et al. 2022's Table 2, with localisation precision/recall of the target
    frames."""

    case: str
    method: str
    layer_spec: str
    top1_original: float
    top1_masked: float
    precision: float
    recall: float
    #: ``(B,)`` the class of each trial's target speaker A: the unit its intervals resample.
    speakers: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, np.int64), compare=False
    )
    #: ``(B,)`` per trial: ``top1_original`` and ``top1_masked`` hits, ``precision``, ``recall``
    #: (the means above are their averages).
    per_trial: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict, compare=False)


def _crop(x: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``frames``-long crop (the utterance tiled when it is shorter)."""
    if x.shape[0] < frames:
        x = np.tile(x, (int(np.ceil(frames / x.shape[0])), 1))
    start = int(rng.integers(0, x.shape[0] - frames + 1))
    return x[start : start + frames]


def draw_trial(
    case: str,
    utterances_by_speaker: Mapping[str, Sequence[Segment]],
    labels: Mapping[str, int],
    rng: np.random.Generator,
    segment_frames: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One concatenation: A from ``labels`` (the model's training speakers), B and C from
    other, distinct speakers; each occurrence a different utterance where the speaker has
    enough. Returns ``(feats (T, F), target_mask (T,), label of A)``."""
    letters = case_letters(case)
    candidates = sorted(s for s in labels if len(utterances_by_speaker.get(s, ())) > 0)
    if not candidates:
        raise ValueError("multi-speaker: none of the labelled (training) speakers has utterances")
    a = candidates[int(rng.integers(len(candidates)))]
    others = sorted(s for s, utts in utterances_by_speaker.items() if s != a and len(utts) > 0)
    interferers = sorted(set(letters) - {TARGET})
    if len(others) < len(interferers):
        raise ValueError(
            f"multi-speaker case {case} needs {len(interferers)} interfering speakers besides "
            f"{a}, only {len(others)} have utterances"
        )
    picked = rng.choice(len(others), size=len(interferers), replace=False)
    speaker = {TARGET: a} | {
        letter: others[i] for letter, i in zip(interferers, picked, strict=True)
    }
    segments: dict[str, list[np.ndarray]] = {}
    for letter in sorted(set(letters)):
        pool = utterances_by_speaker[speaker[letter]]
        n = letters.count(letter)
        idx = rng.choice(len(pool), size=n, replace=len(pool) < n)
        segments[letter] = [_crop(np.asarray(pool[i]), segment_frames, rng) for i in idx]
    feats, target = build_concatenation(case, segments)
    return feats, target, int(labels[a])


def _spec_maps(per_layer: Mapping[str, np.ndarray], spec: str, how: Normalisation) -> np.ndarray:
    """``(B, T, F)`` normalised maps of a layer spec: 'S2', or 'S4+S3' (element-wise average)."""
    names = spec.split("+") if spec else [""]
    missing = [n for n in names if n not in per_layer]
    if missing:
        raise ValueError(
            f"multi-speaker layer spec {spec!r}: saliency_fn gave no maps for {missing} "
            f"(it gave {sorted(per_layer)})"
        )
    batch = next(iter(per_layer.values())).shape[0]
    return np.stack(
        [layer_average([normalise(per_layer[n][i], how) for n in names]) for i in range(batch)]
    )


@dataclass(frozen=True)
class Mixtures:
    """One case's concatenations: ``feats (B, T, F)``, A's frames ``(B, T)`` and A's classes
    ``(B,)``."""

    feats: Tensor
    target_mask: npt.NDArray[np.bool_]
    target: Tensor


def stack_mixtures(
    drawn: Sequence[tuple[np.ndarray, np.ndarray, int]], device: torch.device
) -> Mixtures:
    """``draw_trial``'s concatenations of one case (equal lengths), batched on ``device``."""
    return Mixtures(
        torch.from_numpy(np.stack([t[0] for t in drawn])).float().to(device),
        np.stack([t[1] for t in drawn]),
        torch.tensor([t[2] for t in drawn], device=device),
    )


def _check_sizes(trials: int, segment_frames: int, batch_size: int) -> None:
    if min(trials, segment_frames, batch_size) < 1:
        raise ValueError(
            f"multi-speaker: trials ({trials}), segment_frames ({segment_frames}) and "
            f"batch_size ({batch_size}) must be >= 1"
        )


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    return next(iter(model.parameters()), torch.empty(0)).device


def run_multispeaker(
    model: nn.Module,
    utterances_by_speaker: Mapping[str, Sequence[Segment]],
    labels: Mapping[str, int],
    cases: Sequence[str],
    saliency_fn: SaliencyFn,
    rng: np.random.Generator,
    trials_per_case: int,
    segment_frames: int,
    layer_specs: Sequence[str] | None = None,
    how: Normalisation = "tanh",
    batch_size: int = 16,
) -> list[MultiSpeakerRow]:
    """Li et al. 2022 Table 2: per case, ``trials_per_case`` concatenations, then per method and
    layer spec the top-1 accuracy with and without saliency masking and the localisation
    precision and recall of A's frames, each with its per-trial values.

    Args:
        model: a classifier (logits over the training speakers), in eval mode.
        utterances_by_speaker: speaker id -> utterances ``(T_i, F)``.
        labels: speaker id -> class index, for the speakers the model was trained on (A is
            drawn from these so that its top-1 is defined).
        saliency_fn: explains a batch for the given targets (A's labels), per method and layer.
        layer_specs: e.g. ``("S1", "S4+S3")``; None: every layer saliency_fn returns, alone.
            A method whose only layer is "" (no layers) gives one row whatever the specs.
        how: normalisation of each map before averaging, localising and masking (Li et al. 2022:
            tanh).
        batch_size: trials per call of ``saliency_fn`` and of the model.
    """
    _check_sizes(trials_per_case, segment_frames, batch_size)
    device = model_device(model)
    rows = []
    for case in cases:
        drawn = [
            draw_trial(case, utterances_by_speaker, labels, rng, segment_frames)
            for _ in range(trials_per_case)
        ]
        mix = stack_mixtures(drawn, device)
        chunks = [slice(i, i + batch_size) for i in range(0, trials_per_case, batch_size)]
        original = np.concatenate([top1(model, mix.feats[c], mix.target[c]) for c in chunks])
        maps = _batched_saliency(saliency_fn, model, mix.feats, mix.target, chunks)
        for method, arrays in maps.items():
            specs = layer_specs if layer_specs is not None else list(arrays)
            for spec in [""] if list(arrays) == [""] else specs:
                s = torch.from_numpy(_spec_maps(arrays, spec, how)).to(mix.feats)
                rows.append(_case_row(model, case, method, spec, mix, s, original, chunks))
    return rows


def _case_row(
    model: nn.Module,
    case: str,
    method: str,
    spec: str,
    mix: Mixtures,
    saliency: Tensor,
    original: npt.NDArray[np.bool_],
    chunks: list[slice],
) -> MultiSpeakerRow:
    """One method and layer spec's masked Top-1 and localisation on a case's mixtures."""
    pr = np.array(
        [
            precision_recall(localise(m), t)
            for m, t in zip(saliency.cpu(), mix.target_mask, strict=True)
        ]
    )
    masked = np.concatenate(
        [masked_top1(model, mix.feats[c], saliency[c], mix.target[c]) for c in chunks]
    )
    per_trial = {
        "top1_original": original.astype(np.float64),
        "top1_masked": masked.astype(np.float64),
        "precision": pr[:, 0],
        "recall": pr[:, 1],
    }
    means = [float(per_trial[k].mean()) for k in per_trial]
    speakers = mix.target.cpu().numpy().astype(np.int64)
    return MultiSpeakerRow(case, method, spec, *means, speakers=speakers, per_trial=per_trial)


@dataclass(frozen=True)
class MixtureCurves:
    """Deletion and insertion curves (Li et al. 2022 Fig. 4) of one method's maps at one layer
    spec (or of the random reference) on a case's mixtures, scored by Top-1 of A."""

    case: str
    method: str
    layer_spec: str
    curves: Mapping[str, Curve]
    #: ``(B,)`` A's class per mixture: the unit the curves' intervals resample.
    speakers: npt.NDArray[np.int64]


def mixture_curves(
    model: nn.Module,
    utterances_by_speaker: Mapping[str, Sequence[Segment]],
    labels: Mapping[str, int],
    saliency_fn: SaliencyFn,
    rng: np.random.Generator,
    trials: int,
    segment_frames: int,
    layer_spec: str,
    steps: int,
    case: str = CURVE_CASE,
    how: Normalisation = "tanh",
    batch_size: int = 16,
    max_rows: int = 128,
) -> list[MixtureCurves]:
    """Li et al. 2022 §4.3, Fig. 4: deletion and insertion curves of each method's (normalised)
    maps at ``layer_spec`` on ``trials`` mixtures of ``case`` (B-A-B: A's frames between two
    of B's), with random (un)masking as the reference (its permutations seeded from ``rng``).
    A map that finds A deletes A's evidence first, so Top-1 of A falls faster than at random.
    ``max_rows``: masked variants per model call (``masking_curves``).
    """
    _check_sizes(trials, segment_frames, batch_size)
    drawn = [
        draw_trial(case, utterances_by_speaker, labels, rng, segment_frames) for _ in range(trials)
    ]
    mix = stack_mixtures(drawn, model_device(model))
    chunks = [slice(i, i + batch_size) for i in range(0, trials, batch_size)]
    maps = _batched_saliency(saliency_fn, model, mix.feats, mix.target, chunks)
    score = top1_score(model, mix.target)
    speakers = mix.target.cpu().numpy().astype(np.int64)
    seed = int(rng.integers(2**31))

    def curves(maps: np.ndarray | None) -> dict[str, Curve]:
        order = "random" if maps is None else "saliency"
        return masking_curves(
            mix.feats, maps, score, steps, order=order, seed=seed, max_rows=max_rows
        )

    out = [MixtureCurves(case, RANDOM, "", curves(None), speakers)]
    for method, arrays in maps.items():
        spec = "" if list(arrays) == [""] else layer_spec
        out.append(
            MixtureCurves(case, method, spec, curves(_spec_maps(arrays, spec, how)), speakers)
        )
    return out


def _batched_saliency(
    saliency_fn: SaliencyFn, model: nn.Module, feats: Tensor, target: Tensor, chunks: list[slice]
) -> dict[str, dict[str, np.ndarray]]:
    """``{method: {layer: (B, T, F)}}`` from ``saliency_fn`` called chunk by chunk."""
    parts: dict[str, dict[str, list[np.ndarray]]] = {}
    for c in chunks:
        x = feats[c]
        for method, per_layer in saliency_fn(model, x, target[c]).items():
            for name, m in per_layer.items():
                arr = _as_numpy(m, tuple(x.shape), f"{method}/{name}")
                parts.setdefault(method, {}).setdefault(name, []).append(arr)
    return {
        method: {name: np.concatenate(ms) for name, ms in layers.items()}
        for method, layers in parts.items()
    }


def _as_numpy(maps: Maps, shape: tuple[int, ...], what: str) -> np.ndarray:
    if isinstance(maps, Tensor):
        maps = maps.detach().cpu().double().numpy()
    m = np.asarray(maps, dtype=np.float64)
    if m.shape != shape:
        raise ValueError(f"run_multispeaker: saliency {what} has shape {m.shape}, expected {shape}")
    return m
