"""The modified-gradient trick every LRP rule here is built on.

Convention: the gradient that flows backwards through a hooked model is the *relevance per unit
of activation*, ``c = R / a``; the relevance of any tensor ``a`` on the path is ``R = a * c``,
and the attribution of the input is ``x * dS/dx``. A rule changes a layer's backward pass (never
its forward value) so that ``c_in = R_in / a_in`` for the relevance ``R_in`` that the rule gives
the layer's input. Any linear, bias-free operation left unhooked (a sum, a concatenation, a
chunk, a transpose, a mean over time) then propagates relevance by the z-rule (LRP-0) exactly:
``R_j = a_j sum_k w_jk c_k = sum_k (a_j w_jk / z_k) R_k``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def with_gradient_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass.

    ``surrogate - surrogate.detach()`` is exactly zero (for finite values), so the result is
    bitwise ``value`` (in ``value``'s dtype, also under autocast); its backward graph is
    ``surrogate``'s alone. Shapes must match.
    """
    return value.detach() + (surrogate - surrogate.detach()).to(value.dtype)


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = +1`` (zennit's convention), the LRP-epsilon
    denominator."""
    sign = (z >= 0).to(z.dtype) * 2 - 1
    return z + sign * epsilon


def safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den != 0``, else 0 (an activation of exactly zero holds no
    relevance in the ``R = a * c`` convention, so nothing is lost by the zero)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), 0.0)
