"""BatchNorm over the whole worker group, so N Ray Train workers train like one.

DDP averages gradients, but BatchNorm normalises each worker's batch with that batch's own
mean and variance: with N workers of batch B/N the model sees different statistics (and
keeps different running ones on each rank) than one worker with batch B. Synchronised
BatchNorm computes the statistics over the global batch instead. PyTorch's SyncBatchNorm
runs on GPUs only (it refuses CPU tensors), so on CPU workers (gloo) ``GroupBatchNorm``
does the same with an autograd-aware all-reduce of the per-channel sums.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.nn.functional import all_reduce


class GroupBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batch of every rank together;
    the same parameters and buffers as the BatchNorm it replaces (checkpoints fit both).
    Input ``(B, C)``, ``(B, C, T)`` or ``(B, C, F, T)``."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {input.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xd = x.double()  # E[x^2] - E[x]^2 in float64: no cancellation
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        stats = all_reduce(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp(min=0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * n / (n - 1).clamp(min=1.0)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        y = (xd - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        y = y.to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _group_bn(bn: nn.modules.batchnorm._BatchNorm) -> GroupBatchNorm:
    new = GroupBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    return new.to(next(bn.buffers(), torch.zeros(0)).device)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm computing statistics over all ranks: PyTorch's
    SyncBatchNorm on GPUs, GroupBatchNorm elsewhere. Unchanged outside a worker group."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return module
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, GroupBatchNorm
        ):
            setattr(module, name, _group_bn(child))
        else:
            synchronise_batchnorm(child, device)
    return module
