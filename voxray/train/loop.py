"""The function every Ray Train worker runs: plain PyTorch plus ``ray.train.report``.

Each epoch iterates this worker's shard of the crop dataset (``feats`` ``(B, T, F)``,
``label`` ``(B,)``), steps Adam(W) under the schedule of ``schedule.py`` and reports the
epoch's metrics with a checkpoint. The checkpoint (written by rank 0 only) holds everything
needed to continue at the next epoch: model and optimiser state, the global step, the
epoch, the RNG states and the metrics history so far. When Ray Train restarts the workers
after a failure, or a driver reruns the same run name on the same storage,
``ray.train.get_checkpoint()`` returns the latest one and training continues from there.

``config`` keys (built by ``trainer.train_model``): ``train`` (TrainConfig), ``model``
(ModelConfig, built with ``voxray.models.build_classifier``), ``input_dim``,
``num_classes``, ``steps_per_epoch``, ``drop_last``, and for fault-injection tests
``fail_at_epoch`` with ``fault_dir``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import Tensor, nn

from voxray.config import TrainConfig
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.train.data import FEATS, LABEL
from voxray.train.schedule import build_schedule

#: file inside every Ray Train checkpoint directory.
STATE_FILE = "state.pt"


class _LossStep(nn.Module):
    """Routes ``classifier.loss`` through ``forward``: DDP only synchronises gradients of
    computations that go through the wrapped module's forward."""

    def __init__(self, classifier: SpeakerClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return self.classifier.loss(x, labels)


def load_train_state(checkpoint: ray.train.Checkpoint) -> dict[str, Any]:
    """The training state saved in a checkpoint (tensors on the CPU; weights_only load)."""
    with checkpoint.as_directory() as folder:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint.path} has no {STATE_FILE}")
        return torch.load(path, map_location="cpu", weights_only=True)


def maybe_fail(config: dict[str, Any], epoch: int) -> None:
    """Fault injection for tests: raise once at the start of ``config['fail_at_epoch']``.

    A marker file in ``config['fault_dir']`` records that the fault fired, so the run Ray
    Train restarts after it goes on."""
    if config.get("fail_at_epoch") != epoch:
        return
    folder = Path(config["fault_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / f"fail-at-epoch-{epoch}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    raise RuntimeError(f"injected failure at the start of epoch {epoch}")


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _sum_across_workers(values: list[float], device: torch.device) -> list[float]:
    """Sum per-worker counters over the worker group (identity with one worker)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _amp(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    """AMP on CUDA only: bf16 where supported (no loss scaling needed), else fp16."""
    if not (cfg.amp and device.type == "cuda"):
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train for ``config['train'].epochs`` epochs, resuming from the latest checkpoint."""
    cfg: TrainConfig = config["train"]
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        # Ray pins OMP threads to the worker's CPUs; use all of them for intra-op parallelism
        torch.set_num_threads(cfg.torch_threads or max(1, math.ceil(cfg.cpus_per_worker)))

    torch.manual_seed(cfg.seed)  # the same initial weights on every worker
    classifier = build_classifier(
        config["model"], int(config["input_dim"]), int(config["num_classes"])
    )
    torch.manual_seed(cfg.seed + 1 + rank)  # then different dropout/noise per worker

    start_epoch, step, resumes, history = 1, 0, 0, []
    state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        state = load_train_state(checkpoint)
        try:
            classifier.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise RuntimeError(
                f"checkpoint {checkpoint.path} does not fit the configured model "
                f"(use a new run name for a different model): {exc}"
            ) from exc
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        resumes, history = int(state["resumes"]) + 1, list(state["history"])

    model = ray.train.torch.prepare_model(_LossStep(classifier))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp, amp_dtype = _amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], device)
    schedule = build_schedule(cfg, int(config["steps_per_epoch"]))

    for epoch in range(start_epoch, cfg.epochs + 1):
        maybe_fail(config, epoch)
        model.train()
        t0 = time.perf_counter()
        # running sums stay on the device: no host sync per step
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen, steps, lr = 0, 0, schedule(step)
        shard = ray.train.get_dataset_shard("train")
        batches = shard.iter_torch_batches(
            batch_size=cfg.batch_size,
            dtypes={FEATS: torch.float32, LABEL: torch.int64},
            device=device,
            drop_last=bool(config["drop_last"]),
            local_shuffle_buffer_size=4 * cfg.batch_size,
        )
        for batch in batches:
            x, y = batch[FEATS], batch[LABEL]
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                loss, logits = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = int(y.shape[0])
            loss_sum += loss.detach().double() * n
            correct += (logits.argmax(dim=1) == y).sum()
            seen += n
            steps += 1
            step += 1
        local = [float(loss_sum), float(correct), float(seen)]  # waits for the device
        elapsed = time.perf_counter() - t0
        total_loss, total_correct, total_seen = _sum_across_workers(local, device)
        metrics = {
            "epoch": epoch,
            "loss": total_loss / max(total_seen, 1.0),
            "accuracy": total_correct / max(total_seen, 1.0),
            "lr": float(lr),
            "samples": int(total_seen),
            "steps": steps,
            "seconds": elapsed,
            "samples_per_s": total_seen / max(elapsed, 1e-9),
            "resumes": resumes,
        }
        history.append(metrics)
        _report(
            metrics,
            rank,
            {
                "model": getattr(model, "module", model).classifier.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "step": step,
                "epoch": epoch,
                "resumes": resumes,
                "history": history,
                "rng": _rng_state(device),
            },
        )


def _report(metrics: dict[str, Any], rank: int, state: dict[str, Any]) -> None:
    """Report on every worker (a barrier); only rank 0 writes and attaches a checkpoint."""
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="voxray-ckpt-") as folder:
        torch.save(state, Path(folder) / STATE_FILE)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(folder),
            checkpoint_dir_name=f"epoch_{int(metrics['epoch']):04d}",
        )
