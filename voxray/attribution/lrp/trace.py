"""One probe forward pass that tells the canonizers and composites what the model's forward code
does, without reading it: in which order the leaf modules run, where each layer group ends,
which layers lie on the relevance path, and which module alone consumes which module's output.

The facts come from forward hooks and from the autograd graph of one item: a BatchNorm "follows"
a convolution when its input node *is* the convolution's output node and no other operation in
the graph uses that node (so folding one into the other leaves every other value unchanged);
a layer is "on the relevance path" when its output node is reachable from the explained output
without passing through a gate's output (a gate's output is a constant for LRP).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from voxray.attribution.cam_layers import is_frame_level


@dataclass(frozen=True)
class Trace:
    """What one forward pass of one item showed (modules hashed by identity)."""

    #: leaf module -> index of its first call (a counter shared with ``group_end``).
    order: dict[nn.Module, int]
    #: leaf module -> number of calls.
    calls: dict[nn.Module, int]
    #: leaf module -> number of dimensions of its (first) output (0 when not a tensor).
    out_dims: dict[nn.Module, int]
    #: layer-group name -> counter value when the group's forward returned.
    group_end: dict[str, int]
    #: layer-group name -> whether its output is a frame-level map (``(B, C, F', T')`` or
    #: ``(B, C, T')`` with ``T' > 1``).
    frame_level: dict[str, bool]
    #: leaf modules whose output reaches the explained output other than through a gate.
    on_path: frozenset[nn.Module]
    #: consumer -> producer: the consumer's input is the producer's output and nothing else
    #: uses it (both called once).
    sole_producer: dict[nn.Module, nn.Module]
    #: module -> qualified name in the model, for messages.
    names: dict[nn.Module, str]

    def leaves(self) -> list[nn.Module]:
        """The leaf modules that ran, in execution order."""
        return sorted(self.order, key=self.order.__getitem__)


def leaf_modules(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    return ((n, m) for n, m in model.named_modules() if next(m.children(), None) is None)


def _graph_walk(root: Any, stop: set[Any]) -> tuple[Counter[Any], set[Any]]:
    """In-degrees of every node reachable from ``root`` (each graph edge counted once), and the
    nodes reachable without expanding the ``stop`` nodes."""
    indegree: Counter[Any] = Counter({root: 1})
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            indegree[nxt] += 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    reach = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        if node in stop:
            continue
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in reach:
                reach.add(nxt)
                stack.append(nxt)
    return indegree, reach


def _node(value: Any) -> Any:
    return value.grad_fn if isinstance(value, Tensor) else None


def trace_model(
    model: nn.Module,
    example: Tensor,
    groups: Mapping[str, nn.Module],
    gates: tuple[type[nn.Module], ...],
) -> Trace:
    """Run ``model`` once on ``example[:1]`` (with gradients, hooks removed afterwards).

    ``groups``: the named layer groups (``SpeakerEmbedder.layers()``) whose ends are recorded;
    ``gates``: module types whose outputs are constants for LRP.
    """
    rec = _Recorder({m for _, m in leaf_modules(model)}, groups)
    out = rec.run(model, example)
    root = _node(out)
    if root is None:
        raise ValueError(f"{type(model).__name__}: the output does not depend on the input")
    gate_nodes = {
        rec.out_node[m] for m in rec.order if isinstance(m, gates) and rec.out_node[m] is not None
    }
    indegree, reach = _graph_walk(root, gate_nodes)
    names = {m: n for n, m in model.named_modules()}
    return Trace(
        order=rec.order,
        calls=dict(rec.calls),
        out_dims=rec.out_dims,
        group_end=rec.group_end,
        frame_level=rec.frame_level,
        on_path=frozenset(
            m for m, node in rec.out_node.items() if node is not None and node in reach
        ),
        sole_producer=_sole_producers(rec, indegree),
        names={m: names.get(m, type(m).__name__) for m in rec.order},
    )


class _Recorder:
    """Forward hooks on the leaf modules and the layer groups of one traced call: each leaf's
    first call (order, input and output autograd nodes, output rank), call counts, and where
    each group ends."""

    def __init__(self, leaves: set[nn.Module], groups: Mapping[str, nn.Module]) -> None:
        self.leaves = leaves
        self.groups = groups
        self.group_of = {id(m): name for name, m in groups.items()}
        self.counter = itertools.count()
        self.order: dict[nn.Module, int] = {}
        self.calls: Counter[nn.Module] = Counter()
        self.in_node: dict[nn.Module, Any] = {}
        self.out_node: dict[nn.Module, Any] = {}
        self.out_dims: dict[nn.Module, int] = {}
        self.group_end: dict[str, int] = {}
        self.frame_level: dict[str, bool] = {}

    def run(self, model: nn.Module, example: Tensor) -> Any:
        """``model(example[:1])`` with the hooks on; they are removed whatever happens."""
        handles = [
            m.register_forward_hook(self.hook) for m in self.leaves | set(self.groups.values())
        ]
        try:
            x = example[:1].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                return model(x)
        finally:
            for h in handles:
                h.remove()

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        index = next(self.counter)
        if module in self.leaves:
            self.calls[module] += 1
            if module not in self.order:
                self.order[module] = index
                self.in_node[module] = _node(inputs[0]) if inputs else None
                self.out_node[module] = _node(output)
                self.out_dims[module] = output.dim() if isinstance(output, Tensor) else 0
        name = self.group_of.get(id(module))
        if name is not None and name not in self.group_end:
            self.group_end[name] = index
            self.frame_level[name] = is_frame_level(output)


def _sole_producers(rec: _Recorder, indegree: Counter[Any]) -> dict[nn.Module, nn.Module]:
    """module -> the module whose output is its input and nothing else's (both called once):
    the pairs a canonizer may merge."""
    producer_of: dict[Any, nn.Module] = {}
    for m in sorted(rec.order, key=rec.order.__getitem__):
        node = rec.out_node[m]
        if node is not None and node not in producer_of:
            producer_of[node] = m  # the first module to output a node created it
    sole: dict[nn.Module, nn.Module] = {}
    for m, node in rec.in_node.items():
        producer = producer_of.get(node) if node is not None else None
        if producer is None or producer is m or rec.calls[m] != 1 or rec.calls[producer] != 1:
            continue
        if indegree[node] == 1:
            sole[m] = producer
    return sole
