"""Map a SpeechBrain ``ECAPA_TDNN`` state_dict onto ``voxray.models.ecapa_tdnn.EcapaTdnn``.

SpeechBrain wraps every ``nn.Conv1d`` / ``nn.BatchNorm1d`` in a module of its own whose inner
torch module is called ``conv`` / ``norm`` (``blocks.0.conv.conv.weight``,
``asp_bn.norm.running_mean``); voxray uses the torch modules directly. So a key is converted
by dropping that inner name (the component just before the parameter name) and renaming the
top-level containers::

    blocks.0.            -> conv1.
    blocks.<i>.          -> block<i>.          (i = 1, 2, 3)
    .res2net_block.      -> .res2net.
    .se_block.           -> .se.
    asp.                 -> pool.
    asp_bn.              -> pool_bn.
    mfa., fc.            -> unchanged
"""

from __future__ import annotations

import re

from torch import Tensor

_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^blocks\.0\."), "conv1."),
    (re.compile(r"^blocks\.([1-9])\."), r"block\1."),
    (re.compile(r"^asp_bn\."), "pool_bn."),
    (re.compile(r"^asp\."), "pool."),
    (re.compile(r"\.res2net_block\."), ".res2net."),
    (re.compile(r"\.se_block\."), ".se."),
)
#: names SpeechBrain gives the torch module inside its Conv1d / BatchNorm1d wrappers.
_INNER = ("conv", "norm")


def convert_speechbrain_key(key: str) -> str:
    """One SpeechBrain ECAPA_TDNN key -> the voxray EcapaTdnn key.

    Raises:
        KeyError: the key is not of SpeechBrain's ``<wrapper>.<conv|norm>.<param>`` form.
    """
    parts = key.split(".")
    if len(parts) < 3 or parts[-2] not in _INNER:
        raise KeyError(f"{key!r} is not a SpeechBrain ECAPA_TDNN key ('<...>.conv|norm.<param>')")
    out = ".".join(parts[:-2] + parts[-1:])
    for pattern, repl in _PREFIXES:
        out = pattern.sub(repl, out)
    return out


def convert_speechbrain_ecapa(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A SpeechBrain ECAPA_TDNN state_dict with keys renamed for ``EcapaTdnn`` (same tensors)."""
    return {convert_speechbrain_key(k): v for k, v in state_dict.items()}
