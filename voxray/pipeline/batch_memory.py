"""How many attribution rows fit in memory: measured on the model at actor start.

Gradient attribution keeps every activation of a forward pass for its backward pass, so the
memory of one Captum call grows with the rows it evaluates at once (``internal_batch_size``:
IG steps x utterances) times the utterance length. A constant that fits ECAPA C=512 on 3 s
fails at C=1024 on 8 s (VoxCeleb2's mean: about 130 MB per row in fp32, 33 GB for 256 rows).
The actor measures instead the bytes autograd saves per row and frame of its own model (the
difference between a 2-row and a 1-row forward, so the weights do not count) and caps the
configured rows at what fits in a fraction of the free device memory for each length.
"""

from __future__ import annotations

from typing import Callable

import torch


def saved_bytes(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Bytes autograd saves for the backward pass of ``forward(x)``; a storage saved by
    several operations (an activation that is both a ReLU's output and a BatchNorm's input)
    counts once."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(x.detach().requires_grad_(True))
    return sum(storages.values())


def bytes_per_row_frame(
    forward: Callable[[torch.Tensor], torch.Tensor],
    num_bins: int,
    device: str | torch.device,
    frames: int = 100,
) -> float:
    """Activation bytes one input row of one frame costs a forward + input-gradient pass."""
    one = saved_bytes(forward, torch.zeros(1, frames, num_bins, device=device))
    two = saved_bytes(forward, torch.zeros(2, frames, num_bins, device=device))
    return max(two - one, 1) / frames


def free_memory_bytes(device: str | torch.device, share: float = 1.0) -> int:
    """Free memory of ``device`` now (``share`` of a GPU shared by several actors)."""
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free * min(max(share, 0.0), 1.0))
    import psutil

    return int(psutil.virtual_memory().available)


def rows_that_fit(budget_bytes: float, per_row_frame: float, frames: int, upper: int) -> int:
    """Rows of ``frames`` frames within ``budget_bytes``, at most ``upper``, at least 1."""
    return max(1, min(upper, int(budget_bytes // max(per_row_frame * frames, 1.0))))
