"""The stage table and the driver that runs stages in order, skipping completed ones.

A stage is complete when its marker exists (written after all of its outputs are
committed) and, for ``features``, it covers every front-end the run's models need;
``voxray run`` skips it then, and a rerun after a crash resumes inside the stage that was
interrupted (each stage skips the rows it already committed). A single stage on a fresh or
partial ``--out`` first runs the stages every later one reads (manifest, features and,
without ``--model``, train) that are not complete, as ``run`` would.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable

from voxray.io.quarantine import release_quarantine, retryable_quarantine
from voxray.io.run_state import OutputLock, clear_stage, mark_stage_done, stage_done, stage_info
from voxray.log import get_logger
from voxray.pipeline.context import RunContext, StageResult

log = get_logger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    #: "module:function" of the job function, imported lazily so `voxray --help` stays fast.
    target: str
    help: str
    needs_data: bool = False
    needs_ray: bool = True
    #: runs in this process, without Ray, unless Ray is a cluster (``RunContext.on_cluster``):
    #: starting a local Ray costs more than the stage's own work on one machine.
    local_without_ray: bool = False

    def function(self) -> Callable[[RunContext], StageResult]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


STAGES: tuple[Stage, ...] = (
    Stage(
        "manifest",
        "voxray.pipeline.manifest_stage:run_manifest",
        "scan the corpus (local or s3://), probe every file, parse the trial lists: "
        "manifest.parquet, "
        "trials.parquet, quarantine.parquet",
        needs_data=True,
        local_without_ray=True,
    ),
    Stage(
        "features",
        "voxray.pipeline.features_stage:run_features",
        "decode audio and compute each front-end the run's models need (Kaldi fbank/MFCC, "
        "SpeechBrain Fbank ...) on a Ray Data actor pool: features/kind=<front-end>/",
        needs_data=True,
    ),
    Stage(
        "train",
        "voxray.pipeline.train_stage:run_train",
        "train the speaker model (ECAPA-TDNN by default) on the training speakers with Ray Train: "
        "models/<name>/",
    ),
    Stage(
        "embed",
        "voxray.pipeline.embed_stage:run_embed",
        "full-utterance and overlapping-segment embeddings on an actor pool: embeddings/",
    ),
    Stage(
        "attribute",
        "voxray.pipeline.attribute_stage:run_attribute",
        "attribution maps (Captum methods, CAMs, LRP) on an actor pool: attributions/",
    ),
    Stage(
        "trial",
        "voxray.pipeline.trial_stage:run_trial",
        "explanations of verification trials (cos(e_a, "
        "e_b) w.r.t. one side's features, the other's "
        ""
        ""
        "embedding fixed), for all, sampled or the worst-error trials: attributions/ pathway=trial",
    ),
    Stage(
        "mask",
        "voxray.pipeline.mask_stage:run_mask",
        "attribution x input, thresholded masks and Moore-neighbourhood augmentation: masked/",
    ),
    Stage(
        "retrain",
        "voxray.pipeline.retrain_stage:run_retrain",
        "retrain the model on each masked condition with Ray Train and embed clean and masked test "
        "data",
    ),
    Stage(
        "tune",
        "voxray.pipeline.tune_stage:run_tune",
        "Ray Tune sweep over mask threshold, method/pathway, LRP epsilon/gamma and CAM layers: "
        "tune/",
    ),
    Stage(
        "evaluate",
        "voxray.pipeline.evaluate_stage:run_evaluate",
        "scores and metrics (EER, minDCF, clustering scorers, faithfulness, multi-speaker, sanity "
        "checks, gender flipping): scores/, metrics/, curves/",
    ),
    Stage(
        "report",
        "voxray.pipeline.report_stage:run_report",
        "the self-contained HTML report: report/index.html",
        needs_ray=False,
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
#: the stages later stages read, run first when a single stage finds them incomplete.
PREREQUISITES = ("manifest", "features", "train", "embed")
#: the stages that read embeddings/ (the trial selection and every scorer): only they need embed.
READS_EMBEDDINGS = frozenset({"trial", "evaluate"})
#: the stages whose outputs follow row by row from earlier ones (each resumes, computing only
#: the rows it lacks) or are recomputed whole from them: when ``--retry-quarantined`` brings
#: items back upstream, they are marked incomplete so the next run adds those items. Training,
#: retraining and the sweep are not: a model is not retrained for a few more utterances
#: (``--force train`` does that), and the log says so.
FOLLOWS_INPUTS = frozenset({"embed", "attribute", "trial", "mask", "evaluate", "report"})


def get_stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r} (stages: {', '.join(STAGE_NAMES)})")


def uses_ray(ctx: RunContext, stage: Stage) -> bool:
    """Whether ``stage`` runs on Ray in this command (see ``Stage.local_without_ray``)."""
    return stage.needs_ray and (ctx.on_cluster or not stage.local_without_ray)


def _start_ray(ctx: RunContext) -> None:
    """Ray, imported only by the commands that run a stage on it (an import costs seconds)."""
    from voxray.pipeline.ray_env import ensure_ray

    ensure_ray(ctx.cfg.ray)  # Ray Data's settings, its retry policy included


def stage_complete(ctx: RunContext, name: str) -> bool:
    """The stage's marker exists; for ``features``, it also lists every front-end needed."""
    if not stage_done(ctx.out, name):
        return False
    if name != "features":
        return True
    from voxray.pipeline.front_ends import run_front_ends  # loads models: only when asked

    done = set(stage_info(ctx.out, name).get("kinds", []))
    return {s.name for s in run_front_ends(ctx)} <= done


def missing_prerequisites(ctx: RunContext, name: str) -> list[str]:
    """Stages of ``PREREQUISITES`` before ``name`` that are not complete, in order (train only
    without ``--model``, embed only for the stages that read embeddings), each checked after the
    ones before it would have run."""
    before = STAGE_NAMES[: STAGE_NAMES.index(name)]
    wanted = [
        n
        for n in PREREQUISITES
        if n in before
        and not (n == "train" and ctx.cfg.model_path)
        # embedding from audio reads no features/ (voxray.pipeline.embed_from_audio)
        and not (n == "features" and name == "embed" and ctx.cfg.embed.from_audio)
        and not (n == "embed" and name not in READS_EMBEDDINGS)
    ]
    return [n for n in wanted if not stage_complete(ctx, n)]


def invalidate_downstream(ctx: RunContext, name: str) -> None:
    """Mark the complete stages after ``name`` that follow its outputs incomplete, so that the
    items a retry brings back reach them on the next run (see FOLLOWS_INPUTS)."""
    later = STAGE_NAMES[STAGE_NAMES.index(name) + 1 :]
    done = [n for n in later if stage_done(ctx.out, n)]
    stale = [n for n in done if n in FOLLOWS_INPUTS]
    kept = [n for n in done if n not in FOLLOWS_INPUTS]
    for n in stale:
        clear_stage(ctx.out, n)
    if stale:
        log.info("stage %s: %s will add the recomputed items on the next run", name, stale)
    if kept:
        log.info(
            "stage %s: %s keep their outputs, made without the recomputed items "
            "(--force to redo them)",
            name,
            kept,
        )


def run_stage(ctx: RunContext, stage: Stage) -> StageResult:
    if uses_ray(ctx, stage):
        _start_ray(ctx)
    started = time.time()
    log.info("stage %s: started", stage.name)
    clear_stage(ctx.out, stage.name)
    if ctx.retry_quarantined:
        released = release_quarantine(ctx.out, stage.name)
        if released:
            log.info("stage %s: recomputing %d quarantined items", stage.name, len(released))
            invalidate_downstream(ctx, stage.name)
    result = stage.function()(ctx)
    seconds = round(time.time() - started, 1)
    mark_stage_done(
        ctx.out, stage.name, {**result.as_dict(), "seconds": seconds, "profile": ctx.cfg.profile}
    )
    log.info(
        "stage %s: done in %.1f s (%d in, %d out, %d quarantined)",
        stage.name,
        seconds,
        result.inputs,
        result.outputs,
        result.quarantined,
    )
    return result


def run_stages(
    ctx: RunContext, names: tuple[str, ...] = STAGE_NAMES, force: bool = False
) -> list[StageResult]:
    """Run ``names`` in order under the output lock, skipping complete stages unless forced;
    before each, the prerequisites it finds incomplete (never forced)."""
    results = []
    ctx.stages = tuple(names)
    if any(uses_ray(ctx, get_stage(n)) for n in names):
        from voxray.pipeline.visibility import check_output_visible

        _start_ray(ctx)
        check_output_visible(ctx.out)  # before any work: a node-local --out on a cluster
    with OutputLock(ctx.out):
        for name in names:
            stage = get_stage(name)
            for dep in PREREQUISITES:
                if dep in missing_prerequisites(ctx, name):
                    log.info("stage %s: running %s first (not complete in --out)", name, dep)
                    results.append(run_stage(ctx, get_stage(dep)))
            if name == "train" and ctx.cfg.model_path:
                log.info("stage train: skipped, using the given model %s", ctx.cfg.model_path)
                continue
            retry = ctx.retry_quarantined and bool(retryable_quarantine(ctx.out, name))
            if not force and not retry and stage_complete(ctx, name):
                log.info("stage %s: already complete, skipped (use --force to redo)", name)
                continue
            results.append(run_stage(ctx, stage))
    return results
