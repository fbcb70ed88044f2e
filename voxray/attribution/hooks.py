"""Context managers that let attribution touch a model without leaving a trace: eval mode and
frozen parameters, forward hooks that are always removed, and a private random state.

After any of them exits (normally or by an exception) the model has the hooks, train/eval
flags and ``requires_grad`` flags it had before, so its output is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def inference_state(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics, no dropout) and ``requires_grad=False`` on every
    parameter while the block runs: attributions are gradients with respect to the input only,
    so no ``.grad`` is ever written to a parameter. The previous flags are restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


@contextmanager
def capture_outputs(layers: Mapping[str, nn.Module]) -> Iterator[dict[str, list[Any]]]:
    """Record the outputs of each named module on the forward passes run inside the block.

    Yields ``name -> [output, ...]`` in call order (a layer that runs twice in one forward pass
    shows up twice, which the CAMs reject). The hooks are removed on exit.
    """
    outputs: dict[str, list[Any]] = {name: [] for name in layers}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: outputs[name].append(out))
        for name, module in layers.items()
    ]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


@contextmanager
def count_calls(modules: Mapping[str, nn.Module]) -> Iterator[dict[str, int]]:
    """Count the forward calls of each named module inside the block (hooks removed on exit)."""
    counts = {name: 0 for name in modules}

    def hook(name: str) -> Any:
        def _count(_m: nn.Module, _i: Any, _o: Any) -> None:
            counts[name] += 1

        return _count

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


@contextmanager
def private_cpu_rng(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for the block and restore the caller's state afterwards, so
    methods that draw through it (Captum's Shapley permutations) are reproducible and draw the
    same samples on every call, without disturbing anyone else's random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield
