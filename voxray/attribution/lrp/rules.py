"""LRP rules as small objects (Sarvaš 2021 eqs. 1-3), each a forward hook that keeps the layer's
output value and replaces its backward pass (see ``gradient.py`` for the ``R = a * c`` convention).

With ``a`` the layer input, ``z = W a + b`` its output and ``c`` the incoming gradient
(``R_k = z_k c_k``):

- ``Zero`` (LRP-0, eq. 1): ``R_j = sum_k a_j w_jk R_k / z_k``, i.e. ``c_in = W^T c``: the plain
  gradient. No division, so no instability at ``z = 0``; conservative when ``b = 0``.
- ``Epsilon(eps)`` (eq. 2): ``R_j = sum_k a_j w_jk R_k / (z_k + eps sign z_k)``, i.e.
  ``c_in = W^T (c z / (z + eps sign z))`` (``sign(0) = +1``); the ``eps`` absorbs weak or
  contradictory relevance.
- ``Gamma(gamma)`` (eq. 3, generalised to signed inputs as zennit 0.5.1's ``Gamma``): for
  ``z_k > 0`` the relevance flows along ``(W + gamma W+)`` for positive inputs and
  ``(W + gamma W-)`` for negative ones, normalised by ``z+ = (W + gamma W+) a+ + (b + gamma b+)
  + (W + gamma W-) a-``; for ``z_k < 0`` the roles of ``W+`` and ``W-`` swap (denominator
  ``(W + gamma W-) a+ + (b + gamma b-) + (W + gamma W+) a-``); ``z_k = 0`` passes nothing. The
  bias enters the denominator (absorbing relevance), the mixed-sign terms carry none; the
  denominator is stabilised by ``stabilizer * sign``. With non-negative inputs (after a ReLU)
  this is eq. 3 exactly.
- ``Pass``: an element-wise activation hands its output relevance to its input unchanged
  (``R_in = R_out``, ``c_in = c f(x) / x``); for ReLU that is its ordinary gradient.
- ``Detach``: the module's output is a constant for LRP: a multiplicative gate (SE's sigmoid,
  attentive pooling's softmax) through which no relevance flows (Arras et al. 2017's rule for the
  gates of LSTMs); the gated signal keeps all of it.

Max pooling needs no rule: its gradient routes the relevance to the winner (``R = max * c``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from voxray.attribution.lrp.gradient import safe_divide, stabilize, with_gradient_of
from voxray.attribution.lrp.layers import linear_view

#: zennit's default stabiliser of the Gamma rule's denominator.
GAMMA_STABILIZER = 1e-6


def _first_input(module: nn.Module, inputs: tuple[Any, ...]) -> Tensor:
    if not inputs or not isinstance(inputs[0], Tensor):
        raise TypeError(f"LRP rule on {type(module).__name__}: the first input must be a tensor")
    return inputs[0]


class Rule(ABC):
    """How relevance flows through one module; ``hook`` is registered as its forward hook."""

    @abstractmethod
    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor | None:
        """The module's output (same value) with this rule's backward pass, or None to keep it."""

    def register(self, module: nn.Module) -> Any:
        """Register on ``module``; returns the removable handle."""
        return module.register_forward_hook(self.hook)


@dataclass(frozen=True)
class Zero(Rule):
    """LRP-0: the gradient of the layer's affine form."""

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor | None:
        view = linear_view(module, _first_input(module, inputs), output)
        if view.linear_output is output:
            return None
        return with_gradient_of(output, view.linear_output)


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon with ``z + epsilon * sign(z)`` in the denominator."""

    epsilon: float = 0.5

    def __post_init__(self) -> None:
        if self.epsilon < 0:
            raise ValueError(f"Epsilon: epsilon must be >= 0, got {self.epsilon}")

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor:
        view = linear_view(module, _first_input(module, inputs), output)
        z = output.detach()
        ratio = safe_divide(z, stabilize(z, self.epsilon))
        return with_gradient_of(output, view.linear_output * ratio)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma, generalised to signed inputs and outputs exactly as zennit's ``Gamma``."""

    gamma: float = 5.0
    stabilizer: float = GAMMA_STABILIZER

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError(f"Gamma: gamma must be >= 0, got {self.gamma}")

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor:
        x = _first_input(module, inputs)
        view = linear_view(module, x, output)
        w, b, g = view.weight.detach(), view.bias, self.gamma
        w_pos, w_neg = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        b_pos = None if b is None else (b + g * b.clamp(min=0)).detach()
        b_neg = None if b is None else (b + g * b.clamp(max=0)).detach()
        x_pos, x_neg = x.clamp(min=0), x.clamp(max=0)
        # positive outputs: positive inputs along W + gW+, negative inputs along W + gW-
        up = view.apply(x_pos, w_pos, b_pos) + view.apply(x_neg, w_neg, None)
        # negative outputs: the other way round
        down = view.apply(x_pos, w_neg, b_neg) + view.apply(x_neg, w_pos, None)
        z = output.detach()
        scale_up = safe_divide(z * (z > 0), stabilize(up.detach(), self.stabilizer))
        scale_down = safe_divide(z * (z < 0), stabilize(down.detach(), self.stabilizer))
        return with_gradient_of(output, up * scale_up + down * scale_down)


@dataclass(frozen=True)
class Pass(Rule):
    """Element-wise activations: all output relevance to the input (``R_in = R_out``)."""

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor:
        x = _first_input(module, inputs)
        if x.shape != output.shape:
            raise ValueError(
                f"Pass rule on {type(module).__name__}: needs an element-wise module, got "
                f"input {tuple(x.shape)} and output {tuple(output.shape)}"
            )
        ratio = safe_divide(output.detach(), x.detach())
        return with_gradient_of(output, x * ratio)


@dataclass(frozen=True)
class Detach(Rule):
    """A multiplicative gate: its output is a constant, no relevance flows into the gate."""

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor:
        return output.detach()
