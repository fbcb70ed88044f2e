"""Composites: which rule each module of a model gets, by module type and by layer group, and
the context manager that applies canonizers and rules and always removes them.

Type map (every composite): the linear layers (``layers.LINEAR_TYPES``: Linear, Conv, eval
BatchNorm, average pooling, the margin head) take the composite's linear rule; element-wise
activations take ``Pass``; ``nn.Sigmoid`` and ``nn.Softmax`` are multiplicative gates and take
``Detach`` (in these models they only ever gate: SE blocks, attentive pooling); max pooling,
dropout, flatten and identity need no rule. A leaf module with parameters of any other type
(e.g. an LSTM) is an error: there is no rule for it.

``uniform(rule)``: one linear rule everywhere (the pure LRP-0 / epsilon / gamma variants).

``LayerGroupComposite`` (Sarvaš 2021): the ordered layer groups of ``SpeakerEmbedder.layers()``
split the linear layers, in execution order, into

- *upper*: everything that runs after the last frame-level group (ECAPA: attentive pooling,
  its BatchNorm, fc, the head; ResNet34SE: pooling, fc, head; AlexNet: fc1, fc2, head): LRP-0
  ("only used for linear and 1D batch normalization layers near the output layer");
- *lower*: the first third (rounded up) of the remaining weight layers (Conv/Linear) on the
  relevance path, i.e. not on a gate's path, with the BatchNorm / pooling layers that run before
  the first layer of the middle part: gamma ("1/3 of the hidden layers ... closer to the input");
- *middle*: the rest of the hidden layers, input side included where gamma is not used: epsilon.

Where each group ends and which layers are on the relevance path come from one probe forward
pass of one item (``trace.py``), so the split needs an example input.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from torch import Tensor, nn

from voxray.attribution.lrp.canonizers import DEFAULT_CANONIZERS, Canonizer
from voxray.attribution.lrp.layers import LINEAR_TYPES, WEIGHT_TYPES
from voxray.attribution.lrp.rules import Detach, Epsilon, Gamma, Pass, Rule, Zero
from voxray.attribution.lrp.trace import Trace, trace_model
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier, SpeakerEmbedder

#: element-wise activations: relevance passes through unchanged.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Hardtanh,
    nn.Softplus,
)
#: multiplicative gates: constants for LRP.
GATE_TYPES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Softmax)


def layer_groups(model: nn.Module) -> dict[str, nn.Module]:
    """The ordered layer groups of a speaker model (its embedder's ``layers()``)."""
    if isinstance(model, SpeakerClassifier):
        return dict(model.embedder.layers())
    if isinstance(model, SpeakerEmbedder):
        return dict(model.layers())
    raise TypeError(
        f"layer groups need a SpeakerClassifier or SpeakerEmbedder (layers()), "
        f"got {type(model).__name__}"
    )


@dataclass(frozen=True)
class Composite(ABC):
    """Base: type map, canonizers, and the hook context; subclasses place the linear rules."""

    canonizers: tuple[Canonizer, ...] = field(default=DEFAULT_CANONIZERS, kw_only=True)

    def groups(self, model: nn.Module) -> Mapping[str, nn.Module]:
        """The layer groups the probe records (none unless a subclass places rules by group)."""
        return {}

    @abstractmethod
    def linear_rules(self, trace: Trace, layers: list[nn.Module]) -> dict[nn.Module, Rule]:
        """A rule for each linear layer (given in execution order)."""

    def rules(self, trace: Trace, neutral: frozenset[nn.Module]) -> dict[nn.Module, Rule]:
        """Every hooked module's rule; ``neutral`` modules (folded BatchNorms) take none."""
        rules: dict[nn.Module, Rule] = {}
        linear: list[nn.Module] = []
        for module in trace.leaves():
            if module in neutral:
                continue
            if isinstance(module, LINEAR_TYPES):
                linear.append(module)
            elif isinstance(module, GATE_TYPES):
                rules[module] = Detach()
            elif isinstance(module, ACTIVATION_TYPES):
                rules[module] = Pass()
            elif next(module.parameters(recurse=False), None) is not None:
                raise ValueError(
                    f"LRP has no rule for {trace.names[module]!r} ({type(module).__name__})"
                )
        rules.update(self.linear_rules(trace, linear))
        return rules

    @contextmanager
    def context(self, model: nn.Module, example: Tensor) -> Iterator[dict[nn.Module, Rule]]:
        """Canonize ``model`` and register the rules; yields the rule of each hooked module.

        ``example``: an input batch; its first item runs through the model once (``trace.py``).
        On exit (also on error) every hook is removed and every canonizer undone.
        """
        trace = trace_model(model, example, self.groups(model), GATE_TYPES)
        with ExitStack() as stack:
            neutral: frozenset[nn.Module] = frozenset()
            for canonizer in self.canonizers:
                neutral |= canonizer.apply(model, trace, stack)
            rules = self.rules(trace, neutral)
            for module, rule in rules.items():
                stack.callback(rule.register(module).remove)
            yield rules


@dataclass(frozen=True)
class UniformComposite(Composite):
    """One linear rule for every linear layer."""

    rule: Rule = field(kw_only=True)

    def linear_rules(self, trace: Trace, layers: list[nn.Module]) -> dict[nn.Module, Rule]:
        return {m: self.rule for m in layers}


def uniform(rule: Rule, canonizers: tuple[Canonizer, ...] = DEFAULT_CANONIZERS) -> UniformComposite:
    """The pure variant: ``rule`` on every linear layer."""
    return UniformComposite(rule=rule, canonizers=canonizers)


@dataclass(frozen=True)
class LayerGroupComposite(Composite):
    """Sarvaš 2021's placement: ``lower`` on the first third of the hidden layers, ``middle`` on the
    rest
    of them, ``upper`` after the last frame-level layer group (see the module docstring)."""

    lower: Rule = field(kw_only=True)
    middle: Rule = field(kw_only=True)
    upper: Rule = field(kw_only=True)
    lower_fraction: float = field(default=1.0 / 3.0, kw_only=True)

    def __post_init__(self) -> None:
        if not 0.0 <= self.lower_fraction <= 1.0:
            raise ValueError(f"lower_fraction must be in [0, 1], got {self.lower_fraction}")

    def groups(self, model: nn.Module) -> Mapping[str, nn.Module]:
        return layer_groups(model)

    def linear_rules(self, trace: Trace, layers: list[nn.Module]) -> dict[nn.Module, Rule]:
        frame_ends = [trace.group_end[n] for n, flag in trace.frame_level.items() if flag]
        if not frame_ends:
            groups = ", ".join(trace.group_end) or "none ran"
            raise ValueError(
                f"cannot place the layer groups: no layer group outputs a frame-level map "
                f"(groups: {groups})"
            )
        boundary = max(frame_ends)
        hidden = [m for m in layers if trace.order[m] <= boundary]
        weights = [m for m in hidden if isinstance(m, WEIGHT_TYPES) and m in trace.on_path]
        n_lower = math.ceil(len(weights) * self.lower_fraction)
        if n_lower == 0:
            cut = -1  # no lower part
        elif n_lower < len(weights):
            cut = trace.order[weights[n_lower]]  # the first layer of the middle part
        else:
            cut = boundary + 1  # every hidden layer
        rules: dict[nn.Module, Rule] = {}
        for m in layers:
            index = trace.order[m]
            if index > boundary:
                rules[m] = self.upper
            else:
                rules[m] = self.lower if index < cut else self.middle
        return rules


def _epsilon(params: AttributionConfig) -> Epsilon:
    if params.lrp_epsilon < 0:
        raise ValueError(f"attribution.lrp_epsilon must be >= 0, got {params.lrp_epsilon}")
    return Epsilon(params.lrp_epsilon)


def epsilon_composite(params: AttributionConfig) -> LayerGroupComposite:
    """Sarvaš 2021 figure 9: epsilon (``params.lrp_epsilon``) on the hidden and input layers, LRP-0
    near
    the output."""
    eps = _epsilon(params)
    return LayerGroupComposite(lower=eps, middle=eps, upper=Zero())


def gamma_composite(params: AttributionConfig) -> LayerGroupComposite:
    """Sarvaš 2021 figure 11: as ``epsilon_composite`` with gamma (``params.lrp_gamma``) on the
    lower
    third of the hidden layers."""
    if params.lrp_gamma < 0:
        raise ValueError(f"attribution.lrp_gamma must be >= 0, got {params.lrp_gamma}")
    return LayerGroupComposite(lower=Gamma(params.lrp_gamma), middle=_epsilon(params), upper=Zero())
