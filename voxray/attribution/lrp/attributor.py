"""LRP attributors (Sarvaš 2021): the relevance of each input bin for the target speaker's logit.

- ``lrp_0``: LRP-0 on every layer (Sarvaš 2021 section 4.1, the AlexNet experiments);
- ``lrp_epsilon``: epsilon (``params.lrp_epsilon``, 0.5) on the hidden and input layers, LRP-0
  near the output (Sarvaš 2021 section 5, figure 9);
- ``lrp_gamma``: as ``lrp_epsilon`` with gamma (``params.lrp_gamma``, 5) on the lower third of
  the hidden layers (Sarvaš 2021's final setup, figure 11).

The explained value is the margin-free logit of the given (or predicted) speaker; the output
relevance is that logit, and the maps are ``R = x * dS/dx`` under the composite's hooks,
``(B, T, F)``, pathway label ``lrp``. The model is in eval mode with frozen parameters while the
hooks are on; hooks and canonizers are removed afterwards (``composite.py``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from voxray.attribution.base import AttributionResult, Attributor, Pathway, register
from voxray.attribution.hooks import capture_outputs, inference_state
from voxray.attribution.lrp.composite import (
    Composite,
    epsilon_composite,
    gamma_composite,
    uniform,
)
from voxray.attribution.lrp.rules import Zero
from voxray.attribution.pathways import classification_target


@dataclass(frozen=True)
class Relevance:
    """The input relevance (the input's shape) and, per requested layer, the relevance of that
    layer's output (its shape)."""

    input: Tensor
    layers: dict[str, Tensor]


def relevance(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    composite: Composite,
    layers: Mapping[str, nn.Module] | None = None,
) -> Relevance:
    """LRP of ``model``'s logits ``(B, K)`` at ``target`` ``(B,)`` for ``inputs`` ``(B, ...)``.

    The output relevance of item b is its logit ``model(inputs)[b, target[b]]``. ``layers``
    (name -> module, each run once) also returns the relevance of those modules' outputs. The
    caller sets eval mode (BatchNorm rules need running statistics).
    """
    layers = dict(layers or {})
    x = inputs.detach().clone().requires_grad_(True)
    with ExitStack() as stack:
        stack.enter_context(torch.enable_grad())
        stack.enter_context(composite.context(model, x.detach()))
        # registered after the rules, so the captured outputs are the hooked ones
        captured = stack.enter_context(capture_outputs(layers))
        logits = model(x)
        score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
        acts = []
        for name in layers:
            if len(captured[name]) != 1:
                raise ValueError(f"layer {name!r} ran {len(captured[name])} times, expected once")
            acts.append(captured[name][0])
        grads = torch.autograd.grad(score, [x, *acts], allow_unused=True)
    rel = [
        a.detach() * (torch.zeros_like(a) if g is None else g)
        for a, g in zip([x, *acts], grads, strict=True)
    ]
    return Relevance(rel[0], dict(zip(layers, rel[1:], strict=True)))


class LrpAttributor(Attributor):
    """Shared driver: target, eval state, composite from the config."""

    pathways = (Pathway.LRP,)
    explains = "the classifier's logit"

    @abstractmethod
    def composite(self) -> Composite:
        """The composite built from ``self.params``."""

    def explain(
        self, x: Tensor, pathway: str, target: Tensor | None, baseline: Tensor | None
    ) -> AttributionResult:
        """Relevance maps ``(B, T, F)`` for the target speaker (``baseline`` is not used)."""
        composite = self.composite()
        with inference_state(self.model):
            t = classification_target(self.model, x, target)
            maps = relevance(self.model, x, t, composite).input
        return AttributionResult(maps, None, t)


@register
class Lrp0(LrpAttributor):
    name = "lrp_0"
    title = "LRP-0"
    map_params = ()

    def composite(self) -> Composite:
        return uniform(Zero())


@register
class LrpEpsilon(LrpAttributor):
    name = "lrp_epsilon"
    title = "LRP-\u03b5"
    map_params = ("lrp_epsilon",)

    def composite(self) -> Composite:
        return epsilon_composite(self.params)


@register
class LrpGamma(LrpAttributor):
    name = "lrp_gamma"
    title = "LRP-\u03b3"
    map_params = ("lrp_epsilon", "lrp_gamma")

    def composite(self) -> Composite:
        return gamma_composite(self.params)
