"""Checks on torch modules that tests share: what an attribution method must leave behind."""

from __future__ import annotations

from torch import nn


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre, backward and backward-pre hooks on every module of ``model``: an
    attribution method (Captum's DeepLift, LRP's rules, CAM captures) must remove all it adds."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in model.modules()
    )
