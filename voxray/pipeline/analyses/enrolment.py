"""An enrolment head for a model without a classification head (CAM++, GE2E): the analyses that
explain a target speaker (Top-1, the multi-speaker test, the CAMs) get one from the corpus.

Each corpus speaker's class centre is the mean embedding of up to ``eval.enrolment.per_speaker``
centre crops of its identification-test utterances (``iden_split`` 3, VoxCeleb1's held-out
video; all its utterances when it has none there), and the logits are ``s * cos`` to those
centres: the cosine scoring of verification, as a closed-set classifier. The analyses read
their utterances from the other videos, so a map does not explain an utterance against a centre
made from itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from voxray import schema
from voxray.models.base import SpeakerClassifier
from voxray.models.heads import MarginHead
from voxray.models.loaded import LoadedModel
from voxray.pipeline.context import MANIFEST, RunContext
from voxray.pipeline.datasets import read_features
from voxray.train.data import centre_start, loop_crop

#: a held-out identification utterance (VoxCeleb1's iden_split.txt: 1 train, 2 dev, 3 test).
ENROL_SPLIT = 3


def enrolment_utterances(ctx: RunContext, per_speaker: int) -> dict[str, list[str]]:
    """speaker -> up to ``per_speaker`` of its iden_split-3 utterances (sorted), or of all its
    utterances when it has none there."""
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "speaker_id", "iden_split"]).to_pylist()
    held_out = {r["speaker_id"] for r in m if r["iden_split"] == ENROL_SPLIT}
    chosen: dict[str, list[str]] = {}
    for r in sorted(m, key=lambda r: r["utt_id"]):
        spk = r["speaker_id"]
        if spk in held_out and r["iden_split"] != ENROL_SPLIT:
            continue
        if len(chosen.setdefault(spk, [])) < per_speaker:
            chosen[spk].append(r["utt_id"])
    return chosen


def centres(
    ctx: RunContext, loaded: LoadedModel, utterances: dict[str, list[str]], frames: int
) -> torch.Tensor:
    """``(S, D)`` unit-norm mean embeddings, one per speaker of ``utterances`` (in its order)."""
    wanted = [u for us in utterances.values() for u in us]
    t = read_features(ctx.out, loaded.front_end.name, wanted)
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
    embedder = loaded.classifier.embedder.eval()
    rows = []
    for us in utterances.values():
        x = np.stack(
            [loop_crop(mats[u], centre_start(mats[u].shape[0], frames), frames) for u in us]
        )
        with torch.inference_mode():
            emb = embedder(torch.from_numpy(x.astype(np.float32)))
        rows.append(F.normalize(F.normalize(emb, dim=1).mean(dim=0), dim=0))
    return torch.stack(rows)


def enrolment_head(
    ctx: RunContext, loaded: LoadedModel, frames: int
) -> tuple[np.ndarray, list[str]]:
    """The cosine head's weight ``(S, D)`` (``centres``) and its speakers, the corpus's
    (``enrolment_utterances``): small, so a stage's driver makes it once for its actors."""
    utterances = enrolment_utterances(ctx, ctx.cfg.eval.enrolment.per_speaker)
    return centres(ctx, loaded, utterances, frames).numpy(), list(utterances)


def with_enrolment_head(
    loaded: LoadedModel, weight: np.ndarray, speakers: list[str]
) -> LoadedModel:
    """``loaded`` with a cosine head of ``weight`` over ``speakers`` in place of none: its
    ``speakers`` are the corpus's, so every utterance is labelled."""
    head_cfg = replace(loaded.cfg.head, kind="am", margin=0.0)
    head = MarginHead(weight.shape[1], weight.shape[0], head_cfg)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
    classifier = SpeakerClassifier(loaded.classifier.embedder, head).eval()
    return replace(
        loaded, classifier=classifier, speakers=list(speakers), has_head=True, enrolled=True
    )


def enrolled(ctx: RunContext, loaded: LoadedModel, frames: int) -> LoadedModel:
    """``loaded`` with the enrolment head over the corpus's speakers (``enrolment_head``)."""
    return with_enrolment_head(loaded, *enrolment_head(ctx, loaded, frames))
