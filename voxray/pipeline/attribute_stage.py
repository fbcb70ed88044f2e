"""``voxray attribute``: attribution maps on an actor pool whose constructor loads the model once.

Two kinds of work share the stage. The mask conditions (attribution x input, retraining)
need their method's maps for EVERY utterance; the other configured methods explain a
subset (test utterances, capped), and the slow perturbation methods (Shapley sampling,
Occlusion) an even smaller one. Utterances are grouped by the set of (method, pathway)
jobs they need and each group streams through the pool. Only utterances of equal length
share a forward pass, so no padding changes what the model sees.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from voxray import schema
from voxray.attribution import Pathway, attribute, get_attributor, method_pathways
from voxray.attribution.normalise import freq_profile
from voxray.attribution.support import HEAD_PATHWAYS, left_out_jobs
from voxray.config import AttributionConfig, VoxrayConfig, to_dict
from voxray.faults import maybe_fail
from voxray.io.sink import QuarantineCause, committed_keys, quarantined_paths, table_sink
from voxray.io.storage import Storage
from voxray.log import get_logger
from voxray.mask.pathway import mask_jobs, seen_utterances
from voxray.models.checkpoint import LoadedModel, load_model
from voxray.pipeline.analyses.crops import crop_frames, spread_over_speakers
from voxray.pipeline.analyses.enrolment import enrolment_head, with_enrolment_head
from voxray.pipeline.batch_memory import bytes_per_row_frame, free_memory_bytes, rows_that_fit
from voxray.pipeline.context import ATTRIBUTIONS, RunContext, StageResult
from voxray.pipeline.datasets import (
    dataset_mean,
    equal_length_groups,
    featured_utterances,
    features_dataset,
    features_rel,
    pool_to_sink,
)
from voxray.pipeline.explanation_audio import write_explanation_audio
from voxray.pipeline.failures import Failure, check_input, compute_split
from voxray.pipeline.front_ends import check_front_end
from voxray.pipeline.model_actor import ModelActor
from voxray.pipeline.model_ref import ModelRef, base_model
from voxray.pipeline.precision import precision
from voxray.pipeline.ray_env import actor_resources

log = get_logger(__name__)
STAGE = "attribute"
ATTR_KEYS = ("utt_id", "method", "pathway")
#: what the attribute and trial actors hand the sink: attributions/ rows, their method, and a
#: failed map's reason and cause (voxray.io.quarantine.QuarantineCause).
BATCH = schema.batch_schema(
    schema.ATTRIBUTIONS, schema.ATTRIBUTIONS_PARTITION, (*schema.FAILED_ROW, "cause")
)
#: utterances of equal length that share one forward pass (halved on out-of-memory).
GROUP_SIZE = 16


@dataclass(frozen=True)
class Job:
    """One (method, pathway) to compute; pathway is the value of the pathway column
    (traversal / classification for Captum methods, cam, lrp)."""

    method: str
    pathway: Pathway


def jobs_for(methods: tuple[str, ...], pathways: tuple[str, ...]) -> list[Job]:
    return list(dict.fromkeys(Job(m, p) for m in methods for p in method_pathways(m, pathways)))


def quarantine_path(utt_id: str, job: Job) -> str:
    """How a failed (utterance, method, pathway) is named in quarantine.parquet."""
    return f"{utt_id} [{job.method}/{job.pathway}]"


def baseline_mean(out: Storage, kind: str, params: AttributionConfig) -> np.ndarray | None:
    """The corpus mean feature vector the ``mean`` baseline explains against (None for the
    other baselines): read once on the driver and handed to every actor of the pool."""
    return dataset_mean(out, features_rel(kind)) if params.baseline == "mean" else None


def params_json(method: str, cfg: AttributionConfig) -> str:
    """The config fields that shape ``method``'s maps (its ``map_params``) as JSON."""
    d = to_dict(cfg)
    return json.dumps({k: d[k] for k in get_attributor(method).map_params}, sort_keys=True)


@dataclass(frozen=True)
class _Maps:
    """One job's result for a group: maps ``(B, T, F)``, completeness errors, targets ``(B,)``."""

    maps: np.ndarray
    errors: np.ndarray | None
    targets: np.ndarray | None


@dataclass(frozen=True)
class _Item:
    """One utterance's outcome of a job: its map ``(T, F)`` or why there is none."""

    index: int
    maps: np.ndarray | None = None
    error: float | None = None
    target: int = -1
    failure: Failure | None = None


class ComputeAttributions(ModelActor):
    """map_batches callable: every job of its group for each utterance of the batch."""

    def __init__(
        self,
        model: ModelRef,
        cfg: AttributionConfig,
        jobs: list[Job],
        corpus_mean: np.ndarray | None,
        num_gpus: float,
        s3: object,
        head: tuple[np.ndarray, list[str]] | None = None,
    ) -> None:
        super().__init__(model, num_gpus, s3)
        if head is not None:  # the explained speaker for a model without a head
            self.loaded = with_enrolment_head(self.loaded, *head)
            self.model = self.loaded.classifier.to(self.device).eval()
        self.has_head = self.loaded.has_head
        self.cfg = cfg
        self.jobs = [j for j in jobs if self.has_head or j.pathway not in HEAD_PATHWAYS]
        self.mean = (
            torch.from_numpy(corpus_mean).to(self.device) if corpus_mean is not None else None
        )
        self.params = {j.method: params_json(j.method, cfg) for j in self.jobs}
        # rows per Captum call from measured memory, not the constant (pipeline/batch_memory.py)
        self.row_frame_bytes = bytes_per_row_frame(self.model.embed, self.input_dim, self.device)
        self.memory_budget = free_memory_bytes(self.device, num_gpus) * cfg.memory_fraction

    def _baseline(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.cfg.baseline == "mean" and self.mean is not None:
            return self.mean.expand_as(x).clone()
        return None

    def _attribute(self, x: torch.Tensor, job: Job) -> _Maps:
        """One job on ``x`` ``(B, T, F)``: maps ``(B, T, F)``, completeness errors, targets."""
        rows = rows_that_fit(
            self.memory_budget, self.row_frame_bytes, x.shape[1], self.cfg.internal_batch_size
        )
        params = dataclasses.replace(self.cfg, internal_batch_size=rows)
        with precision(self.cfg.precision, self.device):
            res = attribute(
                self.model, x, job.method, job.pathway, baseline=self._baseline(x), params=params
            )
        err = res.completeness_error
        return _Maps(
            res.maps.detach().float().cpu().numpy(),
            None if err is None else err.detach().cpu().numpy(),
            None if res.target is None else res.target.detach().cpu().numpy(),
        )

    def _run_job(self, mats: list[np.ndarray], group: list[int], job: Job) -> list[_Item]:
        """``job`` for the equal-length utterances ``group``, one item per utterance; a group
        that fails is split (pipeline/failures.py) so only an utterance that fails on its own
        is quarantined, and not-ours errors propagate to Ray's retries."""

        def run(sub: list[int]) -> _Maps:
            x = torch.from_numpy(np.stack([mats[i] for i in sub])).to(self.device)
            return self._attribute(x, job)

        items: list[_Item] = []
        for sub, res in compute_split(group, run):
            for k, i in enumerate(sub):
                if isinstance(res, Failure):
                    items.append(_Item(i, failure=res))
                elif not np.isfinite(res.maps[k]).all():
                    items.append(
                        _Item(i, failure=Failure(QuarantineCause.COMPUTE, "non-finite attribution"))
                    )
                else:
                    items.append(
                        _Item(
                            i,
                            res.maps[k],
                            None if res.errors is None else float(res.errors[k]),
                            -1 if res.targets is None else int(res.targets[k]),
                        )
                    )
        return items

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        mats = schema.matrices(batch)
        bad_input = {i: f for i, m in enumerate(mats) if (f := check_input(m, self.input_dim))}
        good = [i for i in range(len(mats)) if i not in bad_input]
        groups = equal_length_groups([mats[i].shape[0] for i in good], GROUP_SIZE)
        outcomes: list[tuple[Job, _Item]] = []
        for job in self.jobs:
            items = [_Item(i, failure=f) for i, f in bad_input.items()]
            for group in groups:
                items += self._run_job(mats, [good[k] for k in group], job)
            outcomes += [(job, it) for it in items]
        return self._table(batch.column("utt_id").to_pylist(), outcomes)

    def _table(self, utt_ids: list[str], outcomes: list[tuple[Job, _Item]]) -> pa.Table:
        """attributions/ rows of the outcomes, a failed one with its reason and cause (and no
        map) for the sink to quarantine."""
        cols: dict[str, list] = {
            k: []
            for k in (
                "utt_id",
                "method",
                "pathway",
                "target",
                "num_frames",
                "num_bins",
                "completeness_error",
                "path",
                "error",
                "cause",
            )
        }
        maps: list[np.ndarray] = []
        profiles: list[np.ndarray] = []
        for job, it in outcomes:
            bad = it.failure
            cols["utt_id"].append(utt_ids[it.index])
            cols["method"].append(job.method)
            cols["pathway"].append(job.pathway)
            cols["target"].append(it.target)
            cols["num_frames"].append(0 if bad else it.maps.shape[0])
            cols["num_bins"].append(0 if bad else it.maps.shape[1])
            cols["completeness_error"].append(None if bad else it.error)
            cols["path"].append(quarantine_path(utt_ids[it.index], job))
            cols["error"].append(f"{job.method}/{job.pathway}: {bad.reason}" if bad else None)
            cols["cause"].append(bad.cause.value if bad else None)
            maps.append(np.zeros(0, np.float32) if bad else it.maps)
            profiles.append(np.zeros(0, np.float32) if bad else freq_profile(it.maps))
        cols |= {
            "model": [self.model_name] * len(maps),
            "params": [self.params[m] for m in cols["method"]],
            "values": schema.floats_column(maps),
            "freq_profile": schema.floats_column(profiles),
        }
        return schema.table(BATCH, cols)


def longer_than(seconds_of: Mapping[str, float] | None, bound: float) -> set[str]:
    """The utterances of ``seconds_of`` longer than ``bound`` seconds (none for bound 0, which
    bounds nothing): what ``attribution.max_seconds`` keeps out of the explained subset."""
    return {u for u, t in (seconds_of or {}).items() if bound and t > bound}


def plan(
    cfg: VoxrayConfig,
    utt_split: dict[str, str],
    speaker_of: Mapping[str, str],
    seen: frozenset[str] = frozenset(),
    seconds_of: Mapping[str, float] | None = None,
) -> dict[str, list[Job]]:
    """utt_id -> the jobs it needs (mask-condition methods everywhere, explanations on a subset
    spread over the speakers: ``spread_over_speakers``, of the utterances no longer than
    ``attribution.max_seconds`` by ``seconds_of``).

    The mask conditions' maps follow ``voxray.mask.pathway``: Classification only for the
    utterances in ``seen`` (the model's training speakers), Traversal for the others."""
    a = cfg.attribution
    masks = {
        flag: [Job(m, Pathway(p)) for m, p in mask_jobs(cfg.mask.conditions, flag)]
        for flag in (True, False)
    }
    explain = [m for m in a.methods if not get_attributor(m).perturbs]
    slow = [m for m in a.methods if get_attributor(m).perturbs]
    long = longer_than(seconds_of, a.max_seconds)
    candidates = {
        u: speaker_of.get(u, u)
        for u, s in utt_split.items()
        if a.subset in ("all", s) and u not in long
    }
    subset = spread_over_speakers(candidates, a.max_utterances)
    perturb = subset[: a.perturbation_max_utterances]
    out: dict[str, list[Job]] = {u: list(masks[u in seen]) for u in utt_split}
    for u in subset:
        out.setdefault(u, []).extend(jobs_for(tuple(explain), a.pathways))
    for u in perturb:
        out.setdefault(u, []).extend(jobs_for(tuple(slow), a.pathways))
    return {u: list(dict.fromkeys(j)) for u, j in out.items() if j}


def _wanted(ctx: RunContext, loaded: LoadedModel) -> tuple[dict[str, list[Job]], dict[str, str]]:
    """utt_id -> the jobs it needs, for the utterances that have features (``plan``), less
    what the model cannot explain (``left_out_jobs``: a method not defined for it, and for a
    model without a classification head the head pathways unless ``eval.enrolment`` gives it
    one); and what was left out -> why."""
    cfg, out = ctx.cfg, ctx.out
    manifest = out.read_table(
        schema.MANIFEST_PATH, columns=["utt_id", "split", "speaker_id", "duration_s"]
    )
    have = featured_utterances(out, loaded.front_end.name)
    utts = manifest.column("utt_id").to_pylist()
    split = {
        u: s for u, s in zip(utts, manifest.column("split").to_pylist(), strict=True) if u in have
    }
    speaker_of = dict(zip(utts, manifest.column("speaker_id").to_pylist(), strict=True))
    seconds_of = dict(zip(utts, manifest.column("duration_s").to_pylist(), strict=True))
    seen = seen_utterances(speaker_of, loaded.speakers)
    wanted = plan(cfg, split, speaker_of, seen, seconds_of)
    if cfg.attribution.max_seconds:
        long = len(longer_than(seconds_of, cfg.attribution.max_seconds).intersection(split))
        log.info(
            "attribute: %d of %d utterances are longer than attribution.max_seconds=%g: not "
            "in the explained subset",
            long,
            len(split),
            cfg.attribution.max_seconds,
        )
    masks = sorted({c.method for c in cfg.mask.conditions})
    if masks:  # the bulk of the stage's work when the user asked for a cheap method
        log.info(
            "attribute: %s maps of all %d utterances for the mask conditions, beside the "
            "explained subset (mask.conditions=[] leaves them out)",
            ", ".join(masks),
            len(split),
        )
    a, head = cfg.attribution, loaded.has_head or cfg.eval.enrolment.enabled
    left_out = left_out_jobs(a.methods, a.pathways, loaded.classifier, head)
    for lo in left_out:
        log.info("attribute: %s left out: %s", lo.what, lo.why)

    def kept(j: Job) -> bool:
        if not head and j.pathway in HEAD_PATHWAYS:  # a mask condition's too
            return False
        return not any(lo.covers(j.method, j.pathway) for lo in left_out)

    wanted = {u: [j for j in js if kept(j)] for u, js in wanted.items()}
    return {u: js for u, js in wanted.items() if js}, {lo.what: lo.why for lo in left_out}


def _enrolment_head(
    ctx: RunContext, loaded: LoadedModel, todo: dict[str, list[Job]]
) -> tuple[np.ndarray, list[str]] | None:
    """The enrolment head the actors put on a headless model, where a job explains a class
    score (``HEAD_PATHWAYS``)."""
    jobs = (j for js in todo.values() for j in js)
    if loaded.has_head or not any(j.pathway in HEAD_PATHWAYS for j in jobs):
        return None
    return enrolment_head(ctx, loaded, crop_frames(ctx.cfg))


def _todo(ctx: RunContext, wanted: dict[str, list[Job]]) -> dict[str, list[Job]]:
    """The jobs of ``wanted`` neither committed nor quarantined (a rerun does not retry what
    failed for a reason)."""
    done = committed_keys(ctx.out, ATTRIBUTIONS, ATTR_KEYS)
    failed = quarantined_paths(ctx.out, STAGE)
    todo = {
        u: [
            j
            for j in js
            if (u, j.method, j.pathway) not in done and quarantine_path(u, j) not in failed
        ]
        for u, js in wanted.items()
    }
    return {u: js for u, js in todo.items() if js}


def _compute(
    ctx: RunContext,
    model: ModelRef,
    kind: str,
    todo: dict[str, list[Job]],
    head: tuple[np.ndarray, list[str]] | None,
) -> None:
    """Stream the utterances of ``todo`` through the pool, one pass per set of jobs; ``head``:
    the enrolment head of a headless model (``_enrolment_head``)."""
    cfg, out = ctx.cfg, ctx.out
    corpus_mean = baseline_mean(out, kind, cfg.attribution)
    groups: dict[tuple[Job, ...], list[str]] = {}
    for u, js in todo.items():
        groups.setdefault(tuple(js), []).append(u)
    rc = cfg.attribution.resources
    res = actor_resources(rc)
    for jobs, utts in groups.items():
        log.info(
            "attribute: %d utterances x %s",
            len(utts),
            ", ".join(f"{j.method}/{j.pathway}" for j in jobs),
        )
        pool_to_sink(
            features_dataset(out, kind, utts, rc.batch_size),
            ComputeAttributions,
            (model, cfg.attribution, list(jobs), corpus_mean, res["num_gpus"], cfg.corpus.s3, head),
            rc,
            table_sink(out, ATTRIBUTIONS, ATTR_KEYS, STAGE, rc.rows_per_file),
            res,
            total=len(utts),
        )


def run_attribute(ctx: RunContext) -> StageResult:
    cfg, out = ctx.cfg, ctx.out
    model = base_model(ctx)
    loaded = load_model(model.path, cfg.corpus.s3)
    check_front_end(out, loaded.front_end)
    wanted, left_out = _wanted(ctx, loaded)
    todo = _todo(ctx, wanted)
    n_jobs = sum(len(js) for js in wanted.values())
    result = StageResult(
        STAGE, inputs=n_jobs, skipped=n_jobs - sum(len(js) for js in todo.values())
    )
    _compute(ctx, model, loaded.front_end.name, todo, _enrolment_head(ctx, loaded, todo))
    final = committed_keys(out, ATTRIBUTIONS, ATTR_KEYS)
    quarantined = quarantined_paths(out, STAGE)
    wanted_keys = {(u, j.method, j.pathway) for u, js in wanted.items() for j in js}
    result.skipped = 0
    result.outputs = len(wanted_keys & final)
    result.quarantined = sum(
        1 for u, m, p in wanted_keys - final if quarantine_path(u, Job(m, p)) in quarantined
    )
    result.info = {
        "model": model.name,
        "methods": sorted({j.method for js in wanted.values() for j in js}),
        "audio_files": write_explanation_audio(ctx, model.name, loaded.front_end),
    } | ({"partly_skipped": left_out} if left_out else {})
    return result.check()
