"""Where the work runs: a stage's Ray resources and S3 access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from voxray.config.validation import require_at_least


@dataclass(frozen=True)
class ResourceConfig:
    """Ray resources for one stage's actor pool, applied at the ``map_batches`` call site."""

    batch_size: int = 16
    concurrency: int = 1
    num_cpus: float = 1.0
    #: GPUs per actor; "auto" takes 1 when the cluster has GPUs and 0 otherwise.
    num_gpus: Union[float, Literal["auto"]] = "auto"
    #: rows gathered into one write by the stages that write through Ray Data (one Parquet
    #: file per partition value among them); 0 writes each batch as it comes. Batch-sized
    #: files would be hundreds of thousands of files on VoxCeleb2, slow to list and to query;
    #: rows not yet written when a run dies are recomputed by the rerun.
    rows_per_file: int = 256
    #: the most actors the pool grows to as room appears (nodes added mid-stage, on an
    #: autoscaling cluster); 0 keeps it at ``concurrency``. ``concurrency`` is then the pool's
    #: minimum, the actors it starts with, whose CPUs are sized to fit the nodes there are.
    max_concurrency: int = 0
    #: seconds the pool may do no rows after one of its nodes was lost before the stage stops
    #: with an error naming the node and the rows left (its actors may have nowhere to restart:
    #: without it the stage would wait for ever). Longer than a batch and than a replacement
    #: node takes to join; the rerun resumes from the rows written.
    stall_timeout_s: float = 300.0
    #: torch intra-op threads per actor; 0: a node's cores shared evenly among the pool's
    #: actors there (``ray_env.actor_threads``). Ray's CPU grant does not set them: an actor
    #: granted 1 of 2 CPUs (the other kept for its feed) would compute on one core.
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency"):
            require_at_least(name, getattr(self, name), 1)
        require_at_least("threads", self.threads, 0, " (0: automatic)")
        if self.max_concurrency and self.max_concurrency < self.concurrency:
            raise ValueError(
                f"max_concurrency must be 0 or >= concurrency ({self.concurrency}), "
                f"got {self.max_concurrency}"
            )
        if self.stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {self.stall_timeout_s}")
        require_at_least("rows_per_file", self.rows_per_file, 0)


@dataclass(frozen=True)
class S3Config:
    """S3 access; credentials come from the environment only, never from files we write."""

    endpoint_url: str = ""
    region: str = ""
    anon: bool = False
