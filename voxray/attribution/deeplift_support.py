"""Which models Captum's DeepLift can explain, checked before it runs instead of returning maps
that silently break its rules.

Captum's DeepLift replaces the gradient of each hooked non-linear *module* by the Rescale
multiplier ``(y - y') / (x - x')``. Everything else is differentiated as is, which is exact
for linear layers (convolutions, linear, eval-mode batch norm, average pooling, padding) and
is Captum's documented treatment of functional operations inside custom modules (SE products,
statistics pooling, cosine heads). It cannot propagate a ``torch.nn`` module that is neither
(an LSTM, GELU, LayerNorm, attention ...), an in-place activation (its input is overwritten
before the hook reads it), or a non-linear module that runs twice in one forward pass (the
second call overwrites the first call's stored input).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

#: the non-linear modules Captum 0.9's DeepLift has rules for (its SUPPORTED_NON_LINEAR).
DEEPLIFT_NONLINEAR: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.Softmax,
)

#: torch.nn modules that are linear (affine) in their input in eval mode.
LINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Flatten,
    nn.Unflatten,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
)

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_torch_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.")


def check_deeplift_support(model: nn.Module) -> None:
    """Raise ValueError naming the first module of ``model`` DeepLift cannot propagate."""
    owner = type(model).__name__
    for name, module in model.named_modules():
        if not _is_torch_module(module) or isinstance(module, _CONTAINERS):
            continue
        path = name or "<root>"
        if type(module) in DEEPLIFT_NONLINEAR:
            if getattr(module, "inplace", False):
                raise ValueError(
                    f"deeplift: {owner} module {path!r} ({type(module).__name__}) is in-place; "
                    f"DeepLift needs the activation's input, build it with inplace=False"
                )
            continue
        if not isinstance(module, LINEAR_MODULES):
            known = ", ".join(t.__name__ for t in DEEPLIFT_NONLINEAR)
            raise ValueError(
                f"deeplift: {owner} module {path!r} ({type(module).__name__}) cannot be propagated "
                f"by Captum's DeepLift, which has rules only for {known} and linear layers"
            )


def nonlinear_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules DeepLift hooks, by name."""
    return {name: m for name, m in model.named_modules() if type(m) in DEEPLIFT_NONLINEAR}


def check_single_use(calls: Mapping[str, int], forwards: int, owner: str) -> None:
    """Raise when a hooked module ran more often than the model did (reused in one pass)."""
    reused = sorted(name for name, n in calls.items() if n > forwards and name != "<explained>")
    if reused:
        raise ValueError(
            f"deeplift: {owner} runs the non-linear module(s) {', '.join(map(repr, reused))} more "
            f"than once per forward pass; DeepLift needs a separate module for each use"
        )
