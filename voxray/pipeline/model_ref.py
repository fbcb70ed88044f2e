"""Which model a stage uses: ``--model PATH`` when given, else the one the train stage wrote."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from voxray.pipeline.context import MODELS, RunContext


@dataclass(frozen=True)
class ModelRef:
    """A model's location (local or s3://) and the name written into the outputs' model column."""

    path: str
    name: str


def base_model(ctx: RunContext) -> ModelRef:
    if ctx.cfg.model_path:
        path = ctx.cfg.model_path.rstrip("/")
        stem = posixpath.basename(path)
        if stem.endswith((".ckpt", ".pt")):
            stem = posixpath.basename(posixpath.dirname(path)) or posixpath.splitext(stem)[0]
        return ModelRef(path, stem or "pretrained")
    return trained_model(ctx, ctx.cfg.train.name)


def trained_model(ctx: RunContext, name: str) -> ModelRef:
    return ModelRef(ctx.out.uri(f"{MODELS}/{name}"), name)
