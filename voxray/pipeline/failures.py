"""Which failures of a model stage are the utterance's fault, and what happens to the rest.

A batch of equal-length utterances shares one forward pass, so one failing utterance used to
take its whole group into quarantine, and quarantine is never retried by a plain rerun. The
split here:

- the utterance itself is bad (wrong number of bins, non-finite values): checked before the
  group is formed (``check_input``), quarantined alone with cause ``input``;
- a deterministic error of the computation (a method not defined for the model, a result
  that is not finite): the group is bisected until the utterances that fail on their own
  are found, and only those are quarantined, with cause ``compute``;
- out of memory: the group is halved and retried, down to one utterance; one utterance that
  does not fit alone is quarantined with cause ``resources`` (``--retry-quarantined`` on a
  bigger machine recomputes it);
- anything else (a dying worker, a lost object, an I/O error, Ray's own errors) is not
  caught: Ray retries the task a bounded number of times (``ray_env.ACTOR_RETRIES``) and a
  stage that still fails stops with the error; a rerun resumes from the committed rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
import torch

from voxray.io.sink import QuarantineCause

T = TypeVar("T")

#: exception types a model computation raises deterministically for its input: a method not
#: defined for the model (ValueError, NotImplementedError), an index or shape it rejects.
#: RuntimeError is not among them: torch raises it for device faults and collective errors too.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    NotImplementedError,
    IndexError,
    TypeError,
)


class UtteranceError(ValueError):
    """A per-utterance result that cannot be kept (e.g. a non-finite attribution)."""


@dataclass(frozen=True)
class Failure:
    """Why an item was not computed: the quarantine row's cause and reason."""

    cause: QuarantineCause
    reason: str


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out-of-memory (``torch.OutOfMemoryError``), host ``MemoryError``, or the CPU
    allocator's RuntimeError (``DefaultCPUAllocator: can't allocate memory``)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def failure_cause(exc: BaseException) -> QuarantineCause | None:
    """The quarantine cause of ``exc``, or None when it is not ours to handle (re-raise it)."""
    if is_out_of_memory(exc):
        return QuarantineCause.RESOURCES
    if isinstance(exc, DETERMINISTIC_ERRORS):
        return QuarantineCause.COMPUTE
    return None


def check_input(matrix: np.ndarray, num_bins: int) -> Failure | None:
    """A features matrix ``(T, F)`` the model cannot take, as a Failure (cause ``input``)."""
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] != num_bins:
        return Failure(
            QuarantineCause.INPUT,
            f"features of shape {tuple(matrix.shape)}, the model takes (frames, {num_bins})",
        )
    if not np.isfinite(matrix).all():
        return Failure(QuarantineCause.INPUT, "non-finite feature values")
    return None


def compute_split(
    group: list[int], fn: Callable[[list[int]], T]
) -> list[tuple[list[int], T | Failure]]:
    """``fn(group)``, bisecting the group on out-of-memory or a deterministic error.

    Returns (sub-group, result) pairs covering ``group`` in order; a single item that still
    fails comes back as (``[i]``, ``Failure``). Other exceptions propagate unchanged."""
    try:
        return [(group, fn(group))]
    except Exception as exc:  # classified below; the rest is re-raised
        cause = failure_cause(exc)
        if cause is None:
            raise
        if cause is QuarantineCause.RESOURCES and torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(group) == 1:
            return [(group, Failure(cause, f"{type(exc).__name__}: {exc}"))]
        mid = len(group) // 2
        return compute_split(group[:mid], fn) + compute_split(group[mid:], fn)
