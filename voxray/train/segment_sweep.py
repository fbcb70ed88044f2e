"""Lehmann & Stadelmann 2020 section 4.3 / Fig. 3: the trained model's test EER as a function
of the evaluation segment length.

A trial embeds every test utterance as segments of one length (overlapping as the sweep says;
an utterance shorter than a segment is looped, as in training) with the frozen base model, and
scores the trials by the cosine and the dot product of the mean segment embeddings, each EER
with its speaker-bootstrap interval (``voxray.train.sweep_eval``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from voxray.config import SegmentSweepConfig
from voxray.config.evaluation import IntervalConfig
from voxray.eval.scoring import score_trials_segments
from voxray.models.base import SpeakerClassifier
from voxray.train.data import loop_crop, segment_frames, segment_starts
from voxray.train.sweep_eval import SweepTest, eer_report


@dataclass
class SegmentData:
    """What every segment-length trial needs, shipped once through the object store."""

    model_state: dict[str, torch.Tensor]
    model_factory: Callable[[], SpeakerClassifier]
    test: SweepTest
    frame_shift_ms: float


@torch.inference_mode()
def segment_embeddings(
    model: SpeakerClassifier, feats: np.ndarray, frames: int, overlap: float
) -> np.ndarray:
    """``(S, D)``: the embeddings of an utterance's ``frames``-long overlapping segments."""
    starts = segment_starts(feats.shape[0], frames, overlap)
    crops = np.stack([loop_crop(feats, s, frames) for s in starts]).astype(np.float32)
    return model.embed(torch.from_numpy(crops)).float().numpy()


def segment_trial(
    config: dict[str, Any],
    data: SegmentData,
    sweep: SegmentSweepConfig,
    intervals: IntervalConfig,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The Tune trainable (``config["segment_s"]``); ``report`` is ``ray.tune.report`` unless
    given. Returns the report: per scorer, the EER with its interval."""
    if report is None:
        from ray import tune

        report = tune.report
    model = data.model_factory()
    model.load_state_dict(data.model_state)
    model.eval()
    frames = segment_frames(float(config["segment_s"]), data.frame_shift_ms)
    seg = {
        u: segment_embeddings(model, x, frames, sweep.overlap) for u, x in data.test.feats.items()
    }
    final: dict[str, Any] = {"epoch": 1, "segment_frames": frames}
    for scorer in sweep.scorers:
        scores = score_trials_segments(data.test.trials, seg, scorer)
        final.update(eer_report(scorer, scores, data.test, intervals))
    report(final)
    return final
