"""Canonizers: temporary model surgery that puts a model in a form the LRP rules apply to, undone
on exit (parameters restored bit for bit, patched attributes deleted), so the model's output is
identical before and after.

``MergeBatchNorm`` folds an eval-mode BatchNorm into the Conv1d/Conv2d/Linear whose output it
alone consumes (found from the autograd graph, see ``trace.py``): ``W' = s W``,
``b' = s (b - mean) + beta``, and the BatchNorm becomes the identity. ResNet34SE's stem, block
and shortcut BatchNorms fold this way.

How each part of ECAPA-TDNN (and ResNet34SE) is explained, and why:

- **BatchNorm after ReLU** (every TDNN block is Conv -> ReLU -> BN): there is no preceding linear
  layer to fold it into, and folding it into the *following* layer is impossible in general (its
  output feeds residual sums, Res2Net splits, the SE mean and the MFA concatenation). It stays a
  layer of its own, the per-channel affine map ``s x + t`` (``layers.py``), and takes the rule of
  its layer group (epsilon in the middle, gamma low, LRP-0 near the output), as Sarvaš 2021 applies
  epsilon to its BatchNorm2d layers; its shift ``t`` absorbs relevance like a bias. (With LRP-0
  on the BatchNorm this is the same as folding it into a following 1x1 convolution under that
  convolution's LRP-0 or epsilon rule: ``R = a s W^T c'`` either way.)
- **Sums** (the residual of each SE-Res2Block, ``x_i + y_{i-1}`` in Res2Net, ResNet's shortcut):
  unhooked, they split relevance in proportion to the contributions (z-rule), exactly
  conservative: ``R_a = a / (a + b) R`` (``gradient.py``).
- **Res2Net chunks and concatenations** (split, per-chunk TDNN, concatenation; MFA's
  concatenation; the mean/std concatenation): pure routing, relevance follows its channels.
- **SE blocks** ``x * sigmoid(gate(mean_T x))``: the gate is a constant (``rules.Detach`` on the
  Sigmoid), so all relevance of the product goes to the gated signal ``x``, none into the gate
  path: the standard treatment of multiplicative gates (Arras et al. 2017, LRP for LSTMs). The SE
  block conserves relevance exactly.
- **Attentive statistics pooling**: the softmax attention (and the global-context path that
  computes it) is a constant (``Detach`` on the Softmax). The weighted mean ``mu = sum_t w_t x_t``
  then takes the z-rule. The weighted std is explained by LRP on its own elementary operations:
  centering ``d_t = x_t - mu`` (linear; z-rule), squaring (``d_t^2``'s relevance to ``d_t``), the
  weighted sum ``var = sum_t w_t d_t^2`` (z-rule: frame shares ``w_t d_t^2 / var``) and the square
  root (pass). Composed: ``R_t = w_t x_t (x_t - mu) / var * R_sigma``, which is gradient x input
  (sigma is 1-homogeneous, so the plain backward pass computes it, no wrapper needed) and sums
  to ``R_sigma`` exactly. Why not give each frame its variance share ``w_t d_t^2 / var``
  directly (skipping the centering): in the ``R = a * c`` convention that needs ``c_t = R_t /
  x_t``, and the relevance it puts on near-zero ``x_t`` is then multiplied by ``(x - t) / x``
  in the biased BatchNorm below under LRP-0; measured on ECAPA, ``lrp_0`` maps then moved by
  1.6e-4 (relative L2) from float64 to float32 and by 1.6 under bf16 autocast, against 5e-7 and
  0.09 with the decomposed rule. Rows whose variance is below the model's floor
  (``sqrt(max(var, floor))``) output a constant: their std relevance is absorbed, like a bias's.
  ResNet34SE's temporal statistics pooling is the same with ``w_t = 1/T``.
- **Margin head**: ``s cos(e, w_c)`` with ``1/|e|`` held constant (``layers.py``): conservative.

Consequence (tested): with zero biases and zero BatchNorm shifts, LRP-0 conserves relevance
exactly (up to float rounding) through an SE-Res2Block and through the whole of ECAPA-TDNN and
AlexNet, ``sum R(input) = logit``; in ResNet34SE the one absorber is the std floor of its
statistics pooling (rows whose variance is below ``STD_FLOOR``). Gamma conserves exactly
without its stabiliser (its added terms carry the sign of ``z``, so no denominator is smaller
than ``|z|``) and up to the default 1e-6 stabiliser otherwise; epsilon absorbs by design.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from voxray.attribution.lrp.layers import batchnorm_affine
from voxray.attribution.lrp.trace import Trace


class Canonizer(ABC):
    """Applies a model change and registers its undo on ``stack``."""

    @abstractmethod
    def apply(self, model: nn.Module, trace: Trace, stack: ExitStack) -> frozenset[nn.Module]:
        """Change ``model``; return the modules that became pass-through (they take no rule)."""


def override(stack: ExitStack, module: nn.Module, name: str, value: Any) -> None:
    """Set an instance attribute (e.g. ``forward``) until ``stack`` closes, then delete it so
    the class attribute shows through again."""
    if name in module.__dict__:
        raise RuntimeError(f"{type(module).__name__}.{name} is already overridden")
    object.__setattr__(module, name, value)
    stack.callback(module.__dict__.pop, name)


def _identity(x: Tensor) -> Tensor:
    return x


class MergeBatchNorm(Canonizer):
    """Fold each BatchNorm into the Conv/Linear whose output it alone consumes."""

    def apply(self, model: nn.Module, trace: Trace, stack: ExitStack) -> frozenset[nn.Module]:
        merged = []
        for bn, producer in trace.sole_producer.items():
            dims = trace.out_dims[producer]
            if isinstance(bn, _BatchNorm) and self._foldable(producer, bn, dims):
                self._fold(producer, bn, stack)
                merged.append(bn)
        return frozenset(merged)

    @staticmethod
    def _foldable(producer: nn.Module, bn: _BatchNorm, out_dims: int) -> bool:
        if isinstance(producer, _ConvNd):
            return not producer.transposed and producer.out_channels == bn.num_features
        # BatchNorm normalises dim 1: a Linear's features are there only for (B, C) outputs
        return (
            isinstance(producer, nn.Linear)
            and out_dims == 2
            and producer.out_features == bn.num_features
        )

    @staticmethod
    def _fold(layer: nn.Module, bn: _BatchNorm, stack: ExitStack) -> None:
        scale, shift = batchnorm_affine(bn)
        weight: nn.Parameter = layer.weight  # type: ignore[assignment]
        bias: nn.Parameter | None = layer.bias  # type: ignore[assignment]
        index = (slice(None),) + (None,) * (weight.dim() - 1)
        with torch.no_grad():
            new_weight = weight.data * scale[index]
            old_bias = bias.data if bias is not None else torch.zeros_like(scale)
            new_bias = old_bias * scale + shift
        old_weight_data = weight.data
        weight.data = new_weight
        stack.callback(setattr, weight, "data", old_weight_data)
        if bias is None:
            layer.bias = nn.Parameter(new_bias, requires_grad=False)
            stack.callback(setattr, layer, "bias", None)
        else:
            old_bias_data = bias.data
            bias.data = new_bias
            stack.callback(setattr, bias, "data", old_bias_data)
        override(stack, bn, "forward", _identity)


#: the canonizers every voxray composite applies, in order.
DEFAULT_CANONIZERS: tuple[Canonizer, ...] = (MergeBatchNorm(),)
