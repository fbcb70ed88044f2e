"""What the attribution analyses (and the evaluate stage's XAI metrics) work on: the base
model, and fixed-length centre crops (``train.segment_s``) of utterances, so that every batch
has one shape, as Li et al. 2022's 200-frame inputs do.

A model evaluated on a corpus whose speakers it was not trained on has no class for them:
the crops are then unlabelled, and the analyses that need a class say why they skip it
(``unknown_speakers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pyarrow.compute as pc
import torch
from torch import Tensor

from voxray import schema
from voxray.config import VoxrayConfig
from voxray.models.checkpoint import LoadedModel, load_model
from voxray.pipeline.analyses.enrolment import ENROL_SPLIT, enrolled
from voxray.pipeline.context import MANIFEST, RunContext
from voxray.pipeline.datasets import read_features
from voxray.pipeline.model_ref import base_model
from voxray.train.data import centre_start, loop_crop, segment_frames


@dataclass
class Crops:
    """Fixed-length centre crops of some utterances, with their class labels."""

    utt_ids: list[str]
    feats: Tensor
    #: class ids ``(B,)``; None for crops of speakers the model has no class for.
    labels: Tensor | None


def labelled_rows(loaded: LoadedModel) -> pc.Expression:
    """The manifest rows whose utterances the analyses explain against the model's classes:
    the train split (a trained head's speakers), or for an enrolment head the corpus's
    utterances outside the enrolment split, whatever their split (a corpus of real voices may
    have no train split)."""
    if loaded.enrolled:
        return pc.field("iden_split") != ENROL_SPLIT
    return pc.field("split") == "train"


def spread_over_speakers(speaker_of: Mapping[str, str], n: int) -> list[str]:
    """Up to ``n`` of ``speaker_of``'s utterances (all when ``n`` <= 0), taken round-robin over
    the speakers (each one's in sorted order): a figure over ``n`` utterances then stands for as
    many speakers as it can, not for the first speaker's ``n`` utterances."""
    by_spk: dict[str, list[str]] = {}
    for u in sorted(speaker_of):
        by_spk.setdefault(speaker_of[u], []).append(u)
    limit = n if n > 0 else len(speaker_of)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(v) for v in by_spk.values()):
        chosen += [v[depth] for v in by_spk.values() if depth < len(v)][: limit - len(chosen)]
        depth += 1
    return chosen


def crops(
    ctx: RunContext,
    kind: str,
    split: str | pc.Expression,
    n: int,
    frames: int,
    label_of: Callable[[str], int | None] | None,
) -> Crops:
    """Up to ``n`` utterances of ``split`` (a split's name or a manifest filter) taken
    round-robin over speakers (deterministic): those ``label_of`` gives a class, or any
    (unlabelled) when ``label_of`` is None."""
    where = pc.field("split") == split if isinstance(split, str) else split
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "speaker_id"], filter=where)
    speaker_of = {
        u: s
        for u, s in zip(
            m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True
        )
        if label_of is None or label_of(u) is not None
    }
    chosen = spread_over_speakers(speaker_of, n) if n > 0 else []
    t = read_features(ctx.out, kind, chosen)
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
    ids = [u for u in chosen if u in mats]
    x = (
        np.stack([loop_crop(mats[u], centre_start(mats[u].shape[0], frames), frames) for u in ids])
        if ids
        else np.zeros((0, frames, 0))
    )
    labels = (
        None if label_of is None else torch.tensor([label_of(u) for u in ids], dtype=torch.long)
    )
    return Crops(ids, torch.from_numpy(x.astype(np.float32)), labels)


def speakers_of(ctx: RunContext, utt_ids: list[str]) -> list[str]:
    """Each utterance's speaker (the manifest's), the unit its figures' intervals resample;
    an utterance the manifest lacks stands for itself."""
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "speaker_id"])
    speaker_of = dict(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    )
    return [speaker_of.get(u, u) for u in utt_ids]


def analysed_model(ctx: RunContext, enrol: bool = True) -> LoadedModel:
    """The base model the analyses explain; one without a head gets an enrolment head over the
    corpus's speakers when ``eval.enrolment`` asks and ``enrol`` allows (identification does
    not: the centres are made of the utterances it tests)."""
    loaded = load_model(base_model(ctx).path, ctx.cfg.corpus.s3)
    if loaded.has_head or not (enrol and ctx.cfg.eval.enrolment.enabled):
        return loaded
    return enrolled(ctx, loaded, crop_frames(ctx.cfg))


def crop_frames(cfg: VoxrayConfig, seconds: float | None = None) -> int:
    """Frames of a crop of ``seconds`` (default ``train.segment_s``)."""
    return segment_frames(seconds or cfg.train.segment_s, cfg.features.frame_shift_ms)


def speaker_labels(loaded: LoadedModel) -> Callable[[str], int | None]:
    """utt_id -> the model's class of its speaker, None for a speaker it has no class for."""
    index = {s: i for i, s in enumerate(loaded.speakers)}
    return lambda u: index.get(u.split("/", 1)[0])


def unknown_speakers(loaded: LoadedModel, where: str) -> str:
    """Why an analysis that needs the model's classes cannot run on ``where``."""
    return (
        f"no utterance of {where} is of one of the model's {len(loaded.speakers)} training "
        "speakers (the corpus's speakers are disjoint from the model's), so Top-1 and the "
        "classifier's target speaker are undefined"
    )


def labelled_crops(
    ctx: RunContext, loaded: LoadedModel, n: int, frames: int
) -> tuple[Crops, dict[str, str]]:
    """Up to ``n`` train-split crops of the model's speakers, with their classes; when the
    corpus has none of them (or the model has no head), unlabelled crops of its own speakers
    (train split, else test: a corpus of test speakers only) and why the analyses that need
    classes are left out."""
    kind = loaded.front_end.name
    data = crops(ctx, kind, labelled_rows(loaded), n, frames, speaker_labels(loaded))
    if data.utt_ids:
        return data, {}
    why = unknown_speakers(loaded, "the train split")
    unlabelled = crops(ctx, kind, "train", n, frames, None)
    if not unlabelled.utt_ids:
        unlabelled = crops(ctx, kind, "test", n, frames, None)
    return unlabelled, {"top1": why}
