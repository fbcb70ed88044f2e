"""Numeric precision of the model stages: fp32, TF32 matmuls (CUDA only) or bf16 autocast.

bf16 halves memory traffic and runs on the tensor cores, at a cost in attribution accuracy
that tests/unit/core/test_precision.py measures on ECAPA-TDNN: bf16 IG maps stay within
BF16_MAP_ERROR (relative L2 error against fp32) — within what a heat map or a 0.1 mask
threshold can show, but worth knowing before comparing completeness errors.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

import torch

Precision = Literal["fp32", "tf32", "bf16"]
#: documented bound on the relative L2 error of bf16 attribution maps against fp32.
BF16_MAP_ERROR = 0.1


@contextmanager
def precision(kind: Precision, device: str) -> Iterator[None]:
    """Run the block at ``kind`` precision on ``device`` ('cpu' or 'cuda'); fp32 is a no-op."""
    if kind == "bf16":
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            yield
        return
    if kind == "tf32" and device == "cuda":
        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return
    yield
