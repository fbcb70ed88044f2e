"""``voxray evaluate``: verification scores and metrics for every model and condition, then
the attribution analyses (identification, faithfulness, pixel flipping, multi-speaker
localisation, sanity checks, the gender experiment).

Each part records its own marker (``_stages/evaluate.<part>.json``), so an interrupted
evaluation resumes at the part it was in. The analyses run as Ray tasks, so on a cluster
they go to a worker (a GPU one when there is one) rather than the driver.
"""

from __future__ import annotations

from typing import Any, Callable

import ray

from voxray.io.run_state import mark_stage_done, stage_done
from voxray.log import get_logger
from voxray.pipeline.analyses import ANALYSES
from voxray.pipeline.context import RunContext, StageResult
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.ray_env import cluster_gpus, largest_node_cpus
from voxray.pipeline.verification_eval import run_verification
from voxray.pipeline.xai_eval import run_xai

log = get_logger(__name__)
STAGE = "evaluate"


def _remote(fn: Callable[[RunContext], dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
    """One analysis as a Ray task; they run one after another, so each may use the cores of
    one node (up to 8)."""
    cpus = max(1, min(int(largest_node_cpus()), 8))
    task = ray.remote(fn).options(
        num_cpus=cpus, num_gpus=1 if cluster_gpus() > 0 else 0, max_retries=1
    )
    return ray.get(task.remote(ctx))


def _log_skips(name: str, info: dict[str, Any]) -> None:
    """Say what a part did not compute and why (the report shows the same from its marker)."""
    if info.get("skipped"):
        log.warning("evaluate: %s skipped: %s", name, info["skipped"])
    for what, why in info.get("partly_skipped", {}).items():
        log.warning("evaluate: %s without %s: %s", name, what, why)


def run_evaluate(ctx: RunContext) -> StageResult:
    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("verification", lambda: run_verification(ctx, base_model(ctx).name)),
    ]
    parts += [
        (name, (lambda fn=fn: _remote(fn, ctx)))
        for name, fn, enabled in ANALYSES
        if enabled(ctx.cfg)
    ]
    if ctx.cfg.eval.xai.enabled:  # from the driver: it runs its own actor pool
        parts.append(("xai", lambda: run_xai(ctx)))
    result = StageResult(STAGE, inputs=len(parts))
    for name, run in parts:
        marker = f"{STAGE}.{name}"
        if stage_done(ctx.out, marker):
            log.info("evaluate: %s already done", name)
        else:
            log.info("evaluate: %s", name)
            info = run()
            _log_skips(name, info)
            mark_stage_done(ctx.out, marker, info)
        result.outputs += 1
    result.info = {"parts": [n for n, _ in parts]}
    return result.check()
