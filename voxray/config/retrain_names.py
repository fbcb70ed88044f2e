"""The names of the retrained models (``<base>--<condition>[--continue][--seed<k>]``): written
by the retrain stage and read back by the report, which groups a condition's models by variant
and seed."""

from __future__ import annotations

import re

from voxray.config.attribution import MaskCondition
from voxray.config.models import RetrainConfig

#: the variant every older run retrained with, which its model name leaves unsaid.
DEFAULT_VARIANT = "scratch"
_SUFFIX = re.compile(r"(?:--(?P<variant>continue))?(?:--seed(?P<seed>\d+))?$")


def condition_slug(cond: MaskCondition) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", cond.name).strip("-")


def retrained_name(
    base: str, cond: MaskCondition, variant: str = DEFAULT_VARIANT, seed: int = 0
) -> str:
    """``<base>--<condition>``, then ``--continue`` for that variant and ``--seed<k>`` past the
    first seed (so a one-seed scratch retraining keeps the name older runs gave it)."""
    name = f"{base}--{condition_slug(cond)}"
    if variant != DEFAULT_VARIANT:
        name = f"{name}--{variant}"
    return f"{name}--seed{seed}" if seed else name


def retrainings(base: str, cfg: RetrainConfig, cond: MaskCondition) -> list[tuple[str, str, int]]:
    """(model name, variant, seed offset) of every retraining of ``cond``."""
    return [
        (retrained_name(base, cond, v, k), v, k) for v in cfg.variants for k in range(cfg.seeds)
    ]


def retraining_of(name: str) -> tuple[str, int]:
    """(variant, seed offset) a retrained model's name says; a name without the suffixes (older
    runs, other namings) is the scratch variant's first seed."""
    found = _SUFFIX.search(name)  # every name matches: both parts are optional
    variant, seed = found.group("variant", "seed") if found else (None, None)
    return variant or DEFAULT_VARIANT, int(seed or 0)
