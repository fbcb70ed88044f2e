"""The function every Ray Train worker runs: plain PyTorch plus ``ray.train.report``.

Each epoch iterates this worker's shard of the crop dataset (``feats`` ``(B, T, F)``,
``label`` ``(B,)``), steps Adam(W) under the schedule of ``schedule.py`` and reports the
epoch's metrics with a checkpoint. The checkpoint (written by rank 0 only) holds everything
needed to continue at the next epoch: model and optimiser state, the global step, the
epoch, the RNG states and the metrics history so far. When Ray Train restarts the workers
after a failure, or a driver reruns the same run name on the same storage,
``ray.train.get_checkpoint()`` returns the latest one and training continues from there.

With ``train.patience`` (early stopping), a ``val`` dataset of fixed crops is scored after
every epoch; training stops after ``patience`` epochs without a lower validation loss, and
the checkpoint carries the best epoch's weights (``best_model``) beside the last ones.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import Tensor, nn

from voxray import faults
from voxray.config import TrainConfig
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.train.data import FEATS, LABEL
from voxray.train.early_stop import EarlyStopping
from voxray.train.schedule import build_schedule
from voxray.train.sync_bn import synchronise_batchnorm

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
    _use_worker_cpus(cfg, device)
    classifier = _initial_classifier(config, cfg.seed, rank)
    progress = _restore(ray.train.get_checkpoint(), classifier)
    opt = _optimisation(classifier, cfg, device, int(config["steps_per_epoch"]), progress)
    stopper = _stopper(cfg, progress)
    if stopper is not None and stopper.stale >= stopper.patience:
        return  # stopped early before this restart: nothing left to train
    for epoch in range(progress.start_epoch, cfg.epochs + 1):
        maybe_fail(config, epoch)
        # the reliability suite's hook (a no-op otherwise): a fault at this epoch, or a slow one
        # so a test can kill a node while training is under way
        faults.maybe_fail(config["stage"])
        totals = _train_epoch(opt, cfg, device, bool(config["drop_last"]), progress)
        metrics = _epoch_metrics(epoch, totals, device, progress.resumes)
        stop = False
        if stopper is not None:
            metrics["val_loss"] = _validation_loss(_classifier(opt), cfg, device)
            stop = stopper.update(epoch, metrics["val_loss"], _classifier(opt))
            metrics["best_epoch"] = stopper.best_epoch
        progress.history.append(metrics)
        _report(metrics, rank, _checkpoint_state(opt, epoch, progress, device, stopper))
        if stop:
            break


@dataclass
class _Progress:
    """Where training stands: fresh, or restored from a checkpoint (``state``)."""

    start_epoch: int = 1
    #: optimiser steps taken so far (the schedule's position).
    step: int = 0
    resumes: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the checkpoint's optimiser, scaler and RNG state, restored by ``_optimisation``.
    state: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Optimisation:
    """The DDP-wrapped loss module and what steps it: AdamW, the loss scaler, AMP, schedule."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_amp: bool
    amp_dtype: torch.dtype
    schedule: Callable[[int], float]


@dataclass(frozen=True)
class _EpochTotals:
    """This worker's sums over one epoch (``loss_sum`` and ``correct`` still on the device)."""

    loss_sum: Tensor
    correct: Tensor
    seen: int
    steps: int
    lr: float
    seconds: float


def _classifier(opt: _Optimisation) -> SpeakerClassifier:
    """The classifier inside the (possibly DDP-wrapped) loss module."""
    return getattr(opt.model, "module", opt.model).classifier


def _stopper(cfg: TrainConfig, progress: _Progress) -> EarlyStopping | None:
    """Early stopping when ``cfg.patience`` asks for it, restored from a checkpoint's state."""
    if not cfg.patience:
        return None
    stopper = EarlyStopping(cfg.patience)
    saved = (progress.state or {}).get("stopper")
    if saved:
        stopper.best, stopper.best_epoch, stopper.stale = (
            saved["best"],
            saved["epoch"],
            saved["stale"],
        )
        stopper.best_state = progress.state["best_model"]
    return stopper


@torch.no_grad()
def _validation_loss(
    classifier: SpeakerClassifier, cfg: TrainConfig, device: torch.device
) -> float:
    """The mean loss over the validation crops of every worker's shard. The classifier is
    called directly, not through DDP, whose forward would wait on workers with fewer batches."""
    classifier.eval()
    loss_sum, seen = 0.0, 0
    batches = ray.train.get_dataset_shard("val").iter_torch_batches(
        batch_size=cfg.batch_size, dtypes={FEATS: torch.float32, LABEL: torch.int64}, device=device
    )
    for batch in batches:
        loss, _ = classifier.loss(batch[FEATS], batch[LABEL])
        n = int(batch[LABEL].shape[0])
        loss_sum += float(loss) * n
        seen += n
    total, count = _sum_across_workers([loss_sum, float(seen)], device)
    if count == 0:
        raise ValueError("early stopping: the validation split is empty")
    return total / count


def _use_worker_cpus(cfg: TrainConfig, device: torch.device) -> None:
    """Ray pins OMP threads to the worker's CPUs; use them for intra-op parallelism."""
    if device.type == "cpu":
        torch.set_num_threads(cfg.torch_threads or max(1, math.ceil(cfg.cpus_per_worker)))


def _initial_classifier(config: dict[str, Any], seed: int, rank: int) -> SpeakerClassifier:
    """The same initial weights on every worker (random, or ``init_state`` where the config
    continues a model), then a different random stream per worker (dropout, noise)."""
    torch.manual_seed(seed)
    classifier = build_classifier(
        config["model"], int(config["input_dim"]), int(config["num_classes"])
    )
    if config.get("init_state") is not None:
        classifier.load_state_dict(config["init_state"])
    torch.manual_seed(seed + 1 + rank)
    return classifier


def _restore(checkpoint: ray.train.Checkpoint | None, classifier: SpeakerClassifier) -> _Progress:
    """Load the checkpoint's weights into ``classifier`` and say where to continue."""
    if checkpoint is None:
        return _Progress()
    state = load_train_state(checkpoint)
    try:
        classifier.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise RuntimeError(
            f"checkpoint {checkpoint.path} does not fit the configured model "
            f"(use a new run name for a different model): {exc}"
        ) from exc
    return _Progress(
        start_epoch=int(state["epoch"]) + 1,
        step=int(state["step"]),
        resumes=int(state["resumes"]) + 1,
        history=list(state["history"]),
        state=state,
    )


def _optimisation(
    classifier: SpeakerClassifier,
    cfg: TrainConfig,
    device: torch.device,
    steps_per_epoch: int,
    progress: _Progress,
) -> _Optimisation:
    """Wrap the classifier for DDP and build its optimiser, restoring a checkpoint's state."""
    if cfg.sync_batchnorm:
        classifier = synchronise_batchnorm(classifier, device)
    model = ray.train.torch.prepare_model(_LossStep(classifier))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp, amp_dtype = _amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    if progress.state is not None:
        optimizer.load_state_dict(progress.state["optimizer"])
        if progress.state.get("scaler"):
            scaler.load_state_dict(progress.state["scaler"])
        _set_rng_state(progress.state["rng"], device)
    schedule = build_schedule(cfg, steps_per_epoch)
    return _Optimisation(model, optimizer, scaler, use_amp, amp_dtype, schedule)


def _train_epoch(
    opt: _Optimisation,
    cfg: TrainConfig,
    device: torch.device,
    drop_last: bool,
    progress: _Progress,
) -> _EpochTotals:
    """One pass over this worker's shard, advancing ``progress.step`` per optimiser step."""
    opt.model.train()
    t0 = time.perf_counter()
    # running sums stay on the device: no host sync per step
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, steps, lr = 0, 0, opt.schedule(progress.step)
    batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=cfg.batch_size,
        dtypes={FEATS: torch.float32, LABEL: torch.int64},
        device=device,
        drop_last=drop_last,
        local_shuffle_buffer_size=4 * cfg.batch_size,
    )
    for batch in batches:
        x, y = batch[FEATS], batch[LABEL]
        lr = opt.schedule(progress.step)
        for group in opt.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=opt.amp_dtype, enabled=opt.use_amp):
            loss, logits = opt.model(x, y)
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        n = int(y.shape[0])
        loss_sum += loss.detach().double() * n
        correct += (logits.argmax(dim=1) == y).sum()
        seen += n
        steps += 1
        progress.step += 1
    float(loss_sum)  # waits for the device, so the time covers the epoch's work
    return _EpochTotals(loss_sum, correct, seen, steps, float(lr), time.perf_counter() - t0)


def _epoch_metrics(
    epoch: int, totals: _EpochTotals, device: torch.device, resumes: int
) -> dict[str, Any]:
    """The epoch's metrics over the whole worker group."""
    local = [float(totals.loss_sum), float(totals.correct), float(totals.seen)]
    total_loss, total_correct, total_seen = _sum_across_workers(local, device)
    return {
        "epoch": epoch,
        "loss": total_loss / max(total_seen, 1.0),
        "accuracy": total_correct / max(total_seen, 1.0),
        "lr": totals.lr,
        "samples": int(total_seen),
        "steps": totals.steps,
        "seconds": totals.seconds,
        "samples_per_s": total_seen / max(totals.seconds, 1e-9),
        "resumes": resumes,
    }


def _checkpoint_state(
    opt: _Optimisation,
    epoch: int,
    progress: _Progress,
    device: torch.device,
    stopper: EarlyStopping | None,
) -> dict[str, Any]:
    """Everything needed to continue at the next epoch (see the module docstring)."""
    stopping: dict[str, Any] = {}
    if stopper is not None:
        stopping = {
            "stopper": {"best": stopper.best, "epoch": stopper.best_epoch, "stale": stopper.stale},
            "best_model": stopper.best_state,
        }
    return {
        **stopping,
        "model": _classifier(opt).state_dict(),
        "optimizer": opt.optimizer.state_dict(),
        "scaler": opt.scaler.state_dict() if opt.scaler.is_enabled() else {},
        "step": progress.step,
        "epoch": epoch,
        "resumes": progress.resumes,
        "history": progress.history,
        "rng": _rng_state(device),
    }


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
