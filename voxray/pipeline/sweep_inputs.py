"""What the tune stage's sweeps read: the test trials they score and the base model as a
weightless factory plus its weights (shipped once to every trial)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import pyarrow.compute as pc

from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.models.loaded import LoadedModel
from voxray.pipeline.context import TRIALS, RunContext


def pick_trials(ctx: RunContext, budget: int) -> tuple[list[tuple[int, str, str]], list[str]]:
    """Trials (label, a, b) whose utterances fit in ``budget`` utterances, both classes kept."""
    t = ctx.out.read_table(TRIALS)
    first = t.column("list").to_pylist()[0] if t.num_rows else ""
    t = t.filter(pc.field("list") == first)
    chosen: list[tuple[int, str, str]] = []
    utts: list[str] = []
    pos = [
        r
        for r in zip(
            t.column("label").to_pylist(),
            t.column("utt_a").to_pylist(),
            t.column("utt_b").to_pylist(),
            strict=True,
        )
    ]
    # interleave targets and non-targets so both classes survive a small budget
    ordered = [
        x
        for pair in zip([p for p in pos if p[0] == 1], [p for p in pos if p[0] == 0], strict=False)
        for x in pair
    ]
    for label, a, b in ordered:
        new = [u for u in (a, b) if u not in utts]
        if len(utts) + len(new) > budget:
            continue
        utts += new
        chosen.append((int(label), a, b))
    return chosen, utts


def model_factory(loaded: LoadedModel) -> Callable[[], SpeakerClassifier]:
    """The loaded model's architecture without weights (trials load ``model_state``)."""
    return functools.partial(
        build_classifier,
        loaded.cfg,
        loaded.input_dim,
        loaded.classifier.num_classes,
        **loaded.options,
    )


def model_state(loaded: LoadedModel) -> dict[str, Any]:
    return {k: v.cpu() for k, v in loaded.classifier.state_dict().items()}
