"""Train a speaker classifier with Ray Train's TorchTrainer over a Ray Data crop pipeline.

``train_model`` turns the utterance dataset into random fixed-length crops (re-drawn every
epoch, because Ray Data re-executes the pipeline per epoch), runs
``loop.train_loop_per_worker`` on ``cfg.num_workers`` workers (DDP when more than one) and
writes ``<model_rel_dir>/model.pt`` + ``config.yaml`` (``voxray.models.checkpoint``) and the
per-epoch metrics as ``<model_rel_dir>/history.parquet``.

Fault tolerance is Ray Train V2's: a worker failure restarts the worker group from the
latest checkpoint up to ``cfg.max_failures`` times, and a new driver calling
``train_model`` again with the same ``storage_path`` and ``name`` finds the run's
checkpoint snapshot there and continues from its latest checkpoint (not from scratch).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, Result, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from voxray.config import ModelConfig, TrainConfig, to_dict
from voxray.features import FrontEndSpec
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.nodes import live_nodes, resource_total
from voxray.train.data import centre_crops, random_crops, segment_frames
from voxray.train.epoch_progress import EpochProgress
from voxray.train.loop import load_train_state, train_loop_per_worker

#: Ray Train checkpoints kept per run (the latest is what a restart resumes from).
CHECKPOINTS_KEPT = 2


@dataclass(frozen=True)
class TrainResult:
    """Where the model went, the per-epoch metrics and the Ray Train checkpoint it came from."""

    model_dir: str
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_path: str = ""
    seconds: float = 0.0


def resolve_use_gpu(use_gpu: bool | str) -> bool:
    """``"auto"``: GPUs when the connected cluster has any."""
    if use_gpu == "auto":
        return resource_total(live_nodes(), "GPU") > 0  # not a lost node's GPUs
    return bool(use_gpu)


def steps_per_epoch(num_rows: int, cfg: TrainConfig) -> tuple[int, bool]:
    """(optimiser steps per worker and epoch, drop_last) for ``num_rows`` utterances.

    Partial batches are dropped (BatchNorm cannot train on a batch of one) unless a worker's
    shard is smaller than one batch."""
    crops = num_rows * cfg.crops_per_utt / cfg.num_workers
    drop_last = crops >= cfg.batch_size
    steps = math.floor(crops / cfg.batch_size) if drop_last else 1
    return max(1, steps), drop_last


def ray_storage(storage_path: str, out_storage: Storage) -> tuple[str, dict[str, Any]]:
    """(path, kwargs) for a Ray Train/Tune ``storage_path``: an s3:// path goes without its
    scheme, with a ``storage_filesystem`` that uses the project's S3 settings (endpoint,
    region); left to Ray, it would reach AWS's default endpoint instead."""
    if not storage_path.startswith("s3://"):
        return storage_path, {}
    fs = Storage(storage_path, out_storage.s3).arrow_fs()
    return storage_path[len("s3://") :], {"storage_filesystem": fs}


def run_config(cfg: TrainConfig, storage_path: str, name: str, out_storage: Storage) -> RunConfig:
    """Checkpoints under ``storage_path/name``; an s3:// path uses the project's S3 settings."""
    storage_path, kwargs = ray_storage(storage_path, out_storage)
    return RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=FailureConfig(max_failures=cfg.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        **kwargs,
    )


def train_model(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    train_ds: ray.data.Dataset,
    num_classes: int,
    input_dim: int,
    storage_path: str,
    name: str,
    speakers: list[str],
    out_storage: Storage,
    model_rel_dir: str,
    frame_shift_ms: float = 10.0,
    fail_at_epoch: int | None = None,
    num_rows: int | None = None,
    data_task_cpus: float = 1.0,
    front_end: FrontEndSpec | None = None,
    init_state: dict[str, Any] | None = None,
    val_ds: ray.data.Dataset | None = None,
    stage: str = "train",
) -> TrainResult:
    """Train on ``train_ds`` (rows: utt_id, num_frames, num_bins, values, label) and save.

    Args:
        num_rows: utterances in ``train_ds`` when the caller knows (else counted, which
            executes the dataset once).
        fail_at_epoch: tests only: raise once at the start of that epoch.
        front_end: the features' front-end, recorded with the model (see ``save_model``).
        init_state: a classifier state_dict to start from (continue training a model on the
            same speakers) instead of random weights.
        val_ds: held-out rows like ``train_ds``'s, for early stopping (``cfg.patience``);
            the model saved is then the best epoch's.
        stage: the pipeline stage training (train or retrain): the name its fault-injection
            hook answers to (``voxray.faults``).
    """
    _check_inputs(cfg, name, speakers, num_classes, val_ds)
    t0 = time.perf_counter()
    rows = train_ds.count() if num_rows is None else num_rows
    if rows < 1:
        raise ValueError(f"no training utterances for model {name!r}")
    seg = segment_frames(cfg.segment_s, frame_shift_ms)
    datasets = _datasets(train_ds, val_ds, cfg, seg, data_task_cpus)
    config = _loop_config(
        cfg, model_cfg, input_dim, num_classes, rows, fail_at_epoch, init_state, stage
    )
    result = _fit(cfg, config, datasets, storage_path, name, out_storage)
    state = load_train_state(result.checkpoint)
    checkpoint_uri = ("s3://" if storage_path.startswith("s3://") else "") + result.checkpoint.path
    extra = _training_record(cfg, seg, frame_shift_ms, state, checkpoint_uri)
    history = _save_trained(
        state, model_cfg, input_dim, speakers, out_storage, model_rel_dir, extra, front_end
    )
    return TrainResult(
        model_dir=out_storage.uri(model_rel_dir),
        history=history,
        checkpoint_path=checkpoint_uri,
        seconds=time.perf_counter() - t0,
    )


def _check_inputs(
    cfg: TrainConfig,
    name: str,
    speakers: list[str],
    num_classes: int,
    val_ds: ray.data.Dataset | None,
) -> None:
    """What ``train_model`` refuses before any work."""
    if cfg.epochs < 1:
        raise ValueError(f"train.epochs must be at least 1, got {cfg.epochs}")
    if cfg.patience and val_ds is None:
        raise ValueError(f"model {name!r}: early stopping (train.patience) needs val_ds")
    if len(speakers) != num_classes:
        raise ValueError(f"{len(speakers)} speaker names for num_classes={num_classes}")


def _fit(
    cfg: TrainConfig,
    config: dict[str, Any],
    datasets: dict[str, ray.data.Dataset],
    storage_path: str,
    name: str,
    out_storage: Storage,
) -> Result:
    """Run the Ray Train loop on ``datasets`` (``train`` crops, ``val`` ones for early
    stopping), its epochs shown as progress; a result with its last checkpoint."""
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=resolve_use_gpu(cfg.use_gpu),
            resources_per_worker={"CPU": cfg.cpus_per_worker},
        ),
        run_config=run_config(cfg, storage_path, name, out_storage),
        datasets=datasets,
    )
    with EpochProgress(Storage(storage_path, out_storage.s3).child(name), name, cfg.epochs):
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training run {name!r} at {storage_path} finished without a checkpoint")
    return result


def _datasets(
    train_ds: ray.data.Dataset,
    val_ds: ray.data.Dataset | None,
    cfg: TrainConfig,
    seg: int,
    data_task_cpus: float,
) -> dict[str, ray.data.Dataset]:
    """The loop's ``train`` crops and, when there are validation rows, its fixed ``val`` ones."""
    datasets = {"train": _crop_stream(train_ds, cfg, seg, data_task_cpus)}
    if val_ds is not None:
        datasets["val"] = _validation_crops(val_ds, cfg, seg, data_task_cpus)
    return datasets


def _training_record(
    cfg: TrainConfig, seg: int, frame_shift_ms: float, state: dict[str, Any], checkpoint: str
) -> dict[str, Any]:
    """What the saved model records of its training (config.yaml's extra keys): the settings,
    the crop length, the epochs run and the one kept, and the checkpoint it came from."""
    return {
        "train": to_dict(cfg),
        "segment_frames": seg,
        "frame_shift_ms": frame_shift_ms,
        "epochs": int(state["epoch"]),
        "best_epoch": int(state.get("stopper", {}).get("epoch", state["epoch"])),
        "checkpoint": checkpoint,
    }


def _crop_stream(
    train_ds: ray.data.Dataset, cfg: TrainConfig, seg: int, data_task_cpus: float
) -> ray.data.Dataset:
    """Random ``seg``-frame crops (augmented, normalised) of each utterance, re-drawn every
    epoch; batches of about ``batch_size`` crops."""
    return train_ds.randomize_block_order().map_batches(
        random_crops,
        fn_kwargs={
            "segment_frames": seg,
            "crops_per_utt": cfg.crops_per_utt,
            "augment_cfg": cfg.augment,
            "normalise": cfg.normalise,
        },
        batch_format="pyarrow",
        batch_size=max(1, cfg.batch_size // cfg.crops_per_utt),
        num_cpus=data_task_cpus,
    )


def _validation_crops(
    val_ds: ray.data.Dataset, cfg: TrainConfig, seg: int, data_task_cpus: float
) -> ray.data.Dataset:
    """The centre crop of each validation utterance, unaugmented: the same crops every epoch,
    so that the validation losses of two epochs differ by the model only."""
    crops = val_ds.map_batches(
        centre_crops,
        fn_kwargs={"segment_frames": seg, "normalise": cfg.normalise},
        batch_format="pyarrow",
        batch_size=cfg.batch_size,
        num_cpus=data_task_cpus,
    )
    return crops.materialize()


def _loop_config(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    input_dim: int,
    num_classes: int,
    rows: int,
    fail_at_epoch: int | None,
    init_state: dict[str, Any] | None = None,
    stage: str = "train",
) -> dict[str, Any]:
    """What ``train_loop_per_worker`` reads (see ``loop.py``); ``init_state``: the weights it
    starts from (a continued model) instead of random ones; ``stage``: the pipeline stage
    training, the name its fault-injection hook answers to."""
    steps, drop_last = steps_per_epoch(rows, cfg)
    config: dict[str, Any] = {
        "train": cfg,
        "model": model_cfg,
        "input_dim": input_dim,
        "num_classes": num_classes,
        "steps_per_epoch": steps,
        "drop_last": drop_last,
        "stage": stage,
    }
    if init_state is not None:
        config["init_state"] = init_state
    if fail_at_epoch is not None:
        config["fail_at_epoch"] = fail_at_epoch
        config["fault_dir"] = os.path.join(tempfile.gettempdir(), "voxray-faults", uuid.uuid4().hex)
    return config


def _save_trained(
    state: dict[str, Any],
    model_cfg: ModelConfig,
    input_dim: int,
    speakers: list[str],
    out_storage: Storage,
    model_rel_dir: str,
    extra: dict[str, Any],
    front_end: FrontEndSpec | None,
) -> list[dict[str, Any]]:
    """Write the final checkpoint's model (its best epoch's, with early stopping) as
    ``model_rel_dir`` (models/<name>/) and its per-epoch history; returns the history."""
    classifier = build_classifier(model_cfg, input_dim, len(speakers))
    classifier.load_state_dict(state.get("best_model") or state["model"])
    history = list(state["history"])
    # history first: save_model writes config.yaml last, which marks the folder complete
    out_storage.write_table(f"{model_rel_dir}/history.parquet", pa.Table.from_pylist(history))
    save_model(
        out_storage,
        model_rel_dir,
        classifier,
        model_cfg,
        speakers,
        input_dim,
        extra=extra,
        front_end=front_end,
    )
    return history
