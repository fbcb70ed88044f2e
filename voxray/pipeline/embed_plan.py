"""What the embed stage computes for a command: from the audio or from features/, and whether
segment embeddings. Both follow from the stages the command runs (``RunContext.stages``), so
``voxray embed`` alone neither writes features/ only to read them once nor computes segments
nobody reads. Apart from the stage modules so that only the stages that embed read these keys.
"""

from __future__ import annotations

import dataclasses

from voxray.config import EmbedConfig
from voxray.pipeline.context import RunContext

#: the stages a command may run besides embed and still read no features/.
NO_FEATURES = frozenset({"manifest", "embed"})


def embeds_from_audio(ctx: RunContext) -> bool:
    """Whether the embed stage computes its model's front-end from the audio
    (``embed.from_audio``): "auto" does so when no stage of the command reads features/
    (``voxray embed`` alone), where a features stage would be written only to be read once
    (issue 31: the staged path cost 0.34x SpeechBrain's loop, the fused one 0.48x). Without
    the command's stages (``ctx.stages`` unset) "auto" reads features/."""
    wanted = ctx.cfg.embed.from_audio
    if wanted == "auto":
        return bool(ctx.stages) and set(ctx.stages) <= NO_FEATURES
    return bool(wanted)


def needs_segments(ctx: RunContext) -> bool:
    """Whether the base model's segment embeddings are computed: when ``embed.segments``
    asks and evaluate, with a segment scorer (every scorer but cosine), is among the
    command's stages: nothing else reads them. An embed stage made without them is redone
    by a later command that needs them (``stages.decide_stage``)."""
    segment_scorer = any(s != "cosine" for s in ctx.cfg.eval.scorers)
    return ctx.cfg.embed.segments and segment_scorer and "evaluate" in ctx.stages


def base_embed_config(ctx: RunContext) -> EmbedConfig:
    """The run's ``embed`` settings for the base model's embed stage, on either path:
    segments only where ``needs_segments``."""
    return dataclasses.replace(ctx.cfg.embed, segments=needs_segments(ctx))
