"""The stage table and the driver that runs stages in order, each as its fingerprint decides.

A stage is complete when its marker exists (written after all of its outputs are
committed) and, for ``features``, it covers every front-end the run's models need. A complete
stage is skipped when its marker's fingerprint matches this run's (voxray.pipeline.fingerprint:
the settings it reads, the model, its input rows, its upstream stages' recipes); a changed
recipe rebuilds it (its outputs removed first) and so every stage after it, changed input rows
resume it. A rerun after a crash resumes inside the stage that was interrupted (each stage
skips the rows it already committed). A single stage on a fresh or partial ``--out`` first
runs the stages every later one reads (manifest, features and, without ``--model``, train)
that are not complete or fresh, as ``run`` would.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection

from voxray.io.quarantine import release_quarantine, retryable_quarantine
from voxray.io.run_state import OutputLock, clear_stage, mark_stage_done, stage_done, stage_info
from voxray.log import get_logger
from voxray.pipeline.context import RunContext, StageResult
from voxray.pipeline.embed_plan import embeds_from_audio, needs_segments
from voxray.pipeline.fingerprint import (
    Action,
    Decision,
    current_form,
    decide,
    downstream,
    fingerprint,
    recipes,
)
from voxray.pipeline.stale import corpus_digest, discard_outputs

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


def command_uses_ray(ctx: RunContext, names: Collection[str]) -> bool:
    """Whether any stage the command names runs on Ray (it then starts Ray before any)."""
    return any(uses_ray(ctx, get_stage(n)) for n in names)


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


def prerequisites(ctx: RunContext, name: str) -> list[str]:
    """Stages of ``PREREQUISITES`` before ``name`` that it reads, in order (train only without
    ``--model``, embed only for the stages that read embeddings)."""
    before = STAGE_NAMES[: STAGE_NAMES.index(name)]
    return [
        n
        for n in PREREQUISITES
        if n in before
        and not (n == "train" and ctx.cfg.model_path)
        # embedding from audio reads no features/ (voxray.pipeline.embed_from_audio)
        and not (n == "features" and name == "embed" and embeds_from_audio(ctx))
        and not (n == "embed" and name not in READS_EMBEDDINGS)
    ]


def missing_prerequisites(ctx: RunContext, name: str) -> list[str]:
    """The ``prerequisites`` of ``name`` that are not complete, in order."""
    return [n for n in prerequisites(ctx, name) if not stage_complete(ctx, n)]


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


def _marker_fingerprints(ctx: RunContext) -> dict[str, dict[str, Any] | None]:
    """The fingerprint on each stage's marker (None where it has none)."""
    return {
        n: stage_info(ctx.out, n).get("fingerprint") if stage_done(ctx.out, n) else None
        for n in STAGE_NAMES
    }


def decide_stage(
    ctx: RunContext, name: str, forced: bool = False, keep_stale: bool = False
) -> tuple[Decision, dict[str, Any]]:
    """What to do with ``name`` (voxray.pipeline.fingerprint.decide), and the fingerprint its
    marker will record."""
    fp = fingerprint(ctx.cfg, name, corpus_digest(ctx, name))
    complete = stage_complete(ctx, name)
    info = stage_info(ctx.out, name) if stage_done(ctx.out, name) else {}
    old = info.get("fingerprint")
    if old is not None:
        old = current_form(name, old, _marker_fingerprints(ctx), recipes(ctx.cfg))
    decision = decide(name, complete, old, fp, forced, keep_stale)
    if name == "embed" and needs_segments(ctx) and info.get("segments") is False:
        # embedded by a command that evaluated nothing (voxray embed alone): redo with segments
        reason = "segment embeddings needed now (a segment scorer runs), not computed before"
        decision = Decision(name, Action.REBUILD, (*decision.reasons, reason))
    return decision, fp


def run_stage(
    ctx: RunContext, stage: Stage, decision: Decision | None = None, fp: dict | None = None
) -> StageResult:
    """Run ``stage`` as ``decision`` says (a rebuild first removes its stale outputs); its
    marker records ``fp``, the fingerprint of what made its outputs."""
    if decision is None or fp is None:
        decision, fp = decide_stage(ctx, stage.name)
    if uses_ray(ctx, stage):
        _start_ray(ctx)
    started = time.time()
    log.info("stage %s: started (%s)", stage.name, "; ".join(decision.reasons) or "to run")
    if decision.action == Action.REBUILD and stage_done(ctx.out, stage.name):
        discard_outputs(ctx, stage.name, stage_info(ctx.out, stage.name))
    clear_stage(ctx.out, stage.name)
    if ctx.retry_quarantined:
        released = release_quarantine(ctx.out, stage.name)
        if released:
            log.info("stage %s: recomputing %d quarantined items", stage.name, len(released))
            invalidate_downstream(ctx, stage.name)
    result = stage.function()(ctx)
    seconds = round(time.time() - started, 1)
    info = {**result.as_dict(), "seconds": seconds, "profile": ctx.cfg.profile}
    mark_stage_done(ctx.out, stage.name, {**info, "fingerprint": fp})
    log.info(
        "stage %s: done in %.1f s (%d in, %d out, %d quarantined)",
        stage.name,
        seconds,
        result.inputs,
        result.outputs,
        result.quarantined,
    )
    return result


def _keep_stale(ctx: RunContext, decision: Decision) -> None:
    """Reuse a stale stage's outputs on the user's word, and say so on its marker (the
    report's stages section shows it)."""
    log.warning(
        "stage %s: outputs kept although stale (--keep-stale): %s",
        decision.stage,
        "; ".join(decision.reasons),
    )
    info = stage_info(ctx.out, decision.stage)
    mark_stage_done(ctx.out, decision.stage, {**info, "kept_stale": list(decision.reasons)})


def _run_decided(
    ctx: RunContext,
    name: str,
    forced: bool,
    keep_stale: bool,
    rerun: bool,
    needed_by: str | None = None,
) -> StageResult | None:
    """Decide ``name`` and act: skip, keep stale outputs, resume or rebuild; ``rerun`` (a
    stage the command names) runs a fresh stage, or one kept stale, too, resuming;
    ``needed_by``: the stage of the command that reads ``name`` (a prerequisite)."""
    decision, fp = decide_stage(ctx, name, forced, keep_stale)
    if decision.action in (Action.SKIP, Action.KEEP_STALE) and rerun:
        decision = Decision(name, Action.RESUME, ("named by the command", *decision.reasons))
    if decision.action == Action.SKIP:
        log.info("stage %s: already complete, skipped (made with these settings)", name)
        return None
    if decision.action == Action.KEEP_STALE:
        _keep_stale(ctx, decision)
        return None
    if needed_by:
        log.info("stage %s reads %s's outputs: running %s first", needed_by, name, name)
    if decision.action == Action.REBUILD and decision.reasons != ("forced",):
        log.info("stage %s: redone, its outputs are stale: %s", name, "; ".join(decision.reasons))
    return run_stage(ctx, get_stage(name), decision, fp)


def run_stages(
    ctx: RunContext,
    names: tuple[str, ...] = STAGE_NAMES,
    force: Collection[str] = (),
    keep_stale: bool = False,
    rerun: bool = False,
) -> list[StageResult]:
    """Run ``names`` in order under the output lock, each as its fingerprint decides
    (voxray.pipeline.fingerprint): skipped when complete and fresh, resumed when incomplete
    or given new input rows, rebuilt when stale (unless ``keep_stale``) or when it or a stage
    it reads is in ``force``. Before each, the prerequisites it reads, decided the same way
    (never forced). ``rerun``: the named stages run even when fresh (a one-stage command)."""
    results = []
    ctx.stages = tuple(names)
    forced = set().union(*(downstream(f) for f in force)) if force else set()
    if command_uses_ray(ctx, names):
        from voxray.pipeline.visibility import check_output_visible

        _start_ray(ctx)
        check_output_visible(ctx.out)  # before any work: a node-local --out on a cluster
    with OutputLock(ctx.out):
        for name in names:
            for dep in prerequisites(ctx, name):
                if dep in names:  # decided in its own turn
                    continue
                done = _run_decided(ctx, dep, False, keep_stale, rerun=False, needed_by=name)
                results += [done] if done else []
            if name == "train" and ctx.cfg.model_path:
                log.info("stage train: skipped, using the given model %s", ctx.cfg.model_path)
                continue
            retry = ctx.retry_quarantined and bool(retryable_quarantine(ctx.out, name))
            done = _run_decided(ctx, name, name in forced, keep_stale, rerun or retry)
            results += [done] if done else []
    return results
