"""Layers as affine maps ``z = W x + b``, the form the LRP rules reason about.

``linear_view(module, x, output)`` says how to recompute a module's output with modified
parameters (the Gamma rule's ``W + gamma W+``) and gives an output whose autograd graph is
linear in ``x`` (the plain gradient is then LRP-0). Supported:

- ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (any padding mode: reflection padding is a linear copy
  of input values, so it is part of ``W``);
- ``BatchNorm`` in eval mode as the per-channel affine map ``s x + t`` with
  ``s = gamma / sqrt(var + eps)``, ``t = beta - mean * s`` (ECAPA's BatchNorm follows a ReLU and
  cannot be folded into a convolution; see ``canonizers.py``);
- average pooling (fixed or adaptive) as a linear map with non-negative weights, represented by
  the scalar weight 1 (``W + gamma W+`` is then ``(1 + gamma) W``);
- voxray's ``MarginHead``: ``W e + b`` for the softmax kind; for the angular kinds
  ``s cos(e, w_c) = (s w_c / |w_c|) . (e / |e|)`` with ``1 / |e|`` held constant (a per-item
  normalisation gate), without which the gradient x input of a cosine would be identically 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.pooling import _AdaptiveAvgPoolNd, _AvgPoolNd

from voxray.models.heads import MarginHead

#: modules that ``linear_view`` understands (the ones the linear rules apply to).
LINEAR_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    _ConvNd,
    _BatchNorm,
    _AvgPoolNd,
    _AdaptiveAvgPoolNd,
    MarginHead,
)
#: the layers with a weight matrix, counted when Sarvaš 2021's layer groups are placed.
WEIGHT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, _ConvNd, MarginHead)

Apply = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


@dataclass(frozen=True)
class LinearView:
    """A module's output as ``apply(x, weight, bias)``.

    ``weight`` / ``bias`` are the effective parameters (``bias`` None when there is none);
    ``linear_output`` has the module's output value (up to rounding) and a graph linear in ``x``.
    """

    weight: Tensor
    bias: Tensor | None
    apply: Apply
    linear_output: Tensor


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.dim() - 2)


def batchnorm_affine(bn: _BatchNorm) -> tuple[Tensor, Tensor]:
    """``(s, t)`` ``(C,)`` of an eval-mode BatchNorm, ``y = s x + t`` per channel."""
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"LRP treats {type(bn).__name__} as a fixed affine map: it needs running statistics "
            f"and eval mode (got training={bn.training}, "
            f"track_running_stats={bn.track_running_stats})"
        )
    scale = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def _conv(module: _ConvNd) -> Apply:
    if module.transposed:
        raise TypeError(f"LRP rules do not cover transposed convolutions ({type(module).__name__})")
    return lambda x, w, b: module._conv_forward(x, w, b)  # type: ignore[operator]


def _head(module: MarginHead, x: Tensor, output: Tensor) -> LinearView:
    if module.bias is not None:
        return LinearView(module.weight, module.bias, F.linear, output)
    norm = x.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12).detach()
    weight = (module.scale * F.normalize(module.weight, dim=1)).detach()

    def apply(inp: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return F.linear(inp / norm, w, b)

    return LinearView(weight, None, apply, apply(x, weight, None))


def linear_view(module: nn.Module, x: Tensor, output: Tensor) -> LinearView:
    """The affine form of ``module`` at input ``x`` (its first positional input) and ``output``.

    Raises:
        TypeError: a module that is not one of ``LINEAR_TYPES``.
    """
    if isinstance(module, nn.Linear):
        return LinearView(module.weight, module.bias, F.linear, output)
    if isinstance(module, _ConvNd):
        return LinearView(module.weight, module.bias, _conv(module), output)
    if isinstance(module, _BatchNorm):
        scale, shift = batchnorm_affine(module)
        shape = _channel_shape(x)

        def affine(inp: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
            out = inp * w.view(shape)
            return out if b is None else out + b.view(shape)

        return LinearView(scale, shift, affine, output)
    if isinstance(module, (_AvgPoolNd, _AdaptiveAvgPoolNd)):
        # ``forward`` (not ``module(...)``): recomputing must not fire the rule's own hook
        one = x.new_ones(())
        return LinearView(one, None, lambda inp, w, b: w * module.forward(inp), output)
    if isinstance(module, MarginHead):
        return _head(module, x, output)
    raise TypeError(f"no linear LRP rule for {type(module).__name__}")
