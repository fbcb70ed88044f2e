"""``voxray trial``: explanations of verification trials (the ``trial`` pathway) on an actor pool.

Runs after ``attribute`` (it needs the embed stage's embeddings): the trials are selected
(every trial, a seeded sample, or the worst false accepts and false rejects at each list's EER
threshold of the embeddings' cosine scores), and each selected side becomes one job, (trial,
side, method). The fixed sides' embeddings come from embeddings/ (computed once per utterance
by the embed stage and shared by every trial that uses them); the explained sides' features
stream through the pool, and an actor explains all the trials of its batch's utterances,
equal-length explained sides sharing one Captum call. Rows go to attributions/ with pathway
``trial``, the trial's key (list, utt_a, utt_b) and the side explained.

For IG (``JOINT_METHODS``) each selected trial is also decomposed jointly
(``voxray.pipeline.trial_joint``): both sides on one path from the baseline pair that
``trial.joint_baseline`` names, two rows (side ``joint_a``, ``joint_b``) whose summed maps
distribute s(x_a, x_b) - s(x'_a, x'_b). Its job streams with the a side; the b side's and the
baseline pair's features are read on the driver and handed to the actors. The other methods
have no joint path; the stage's info says why (``NO_JOINT_PATH``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import torch

from voxray import schema
from voxray.attribution.normalise import freq_profile
from voxray.attribution.support import defined_methods
from voxray.attribution.trial import (
    JOINT_METHODS,
    NO_JOINT_PATH,
    TRIAL,
    attribute_trials,
)
from voxray.config import AttributionConfig, TrialConfig
from voxray.eval.verification import eer_threshold
from voxray.faults import maybe_fail
from voxray.io.sink import QuarantineCause, committed_keys, quarantined_paths, table_sink
from voxray.log import get_logger
from voxray.models.checkpoint import load_model
from voxray.pipeline.attribute_stage import BATCH, baseline_mean, params_json
from voxray.pipeline.context import ATTRIBUTIONS, TRIALS, RunContext, StageResult
from voxray.pipeline.datasets import (
    equal_length_groups,
    featured_utterances,
    features_dataset,
    pool_to_sink,
    read_features,
)
from voxray.pipeline.failures import Failure, check_input, compute_split
from voxray.pipeline.model_actor import ModelActor
from voxray.pipeline.model_ref import ModelRef, base_model
from voxray.pipeline.precision import precision
from voxray.pipeline.ray_env import actor_resources
from voxray.pipeline.trial_joint import (
    TrialKey,
    cohort_pairs,
    equal_shape_groups,
    fit_frames,
    run_joint,
)
from voxray.pipeline.verification_eval import load_embeddings
from voxray.schema import JOINT_SIDES

log = get_logger(__name__)
STAGE = "trial"
#: the key of a trial row in attributions/ (pathway is always ``trial``).
TRIAL_KEYS = ("list", "utt_a", "utt_b", "side", "method")
#: trials of equal-length explained sides that share one Captum call.
GROUP_SIZE = 16


@dataclass(frozen=True)
class Trial:
    """One trial of a list, with its cosine score (NaN when not scored)."""

    list: str
    label: int
    utt_a: str
    utt_b: str
    score: float = float("nan")


@dataclass(frozen=True)
class TrialJob:
    """One map to compute: ``method`` on ``side`` of a trial (``a``/``b``: the other side
    fixed; ``joint_a``/``joint_b``: a joint decomposition's map of that side, computed with
    its sibling from the baseline pair ``base_a``/``base_b``)."""

    list: str
    utt_a: str
    utt_b: str
    side: str
    method: str
    base_a: str | None = None
    base_b: str | None = None

    @property
    def explained(self) -> str:
        return self.utt_a if self.side in ("a", JOINT_SIDES[0]) else self.utt_b

    @property
    def fixed(self) -> str:
        return self.utt_b if self.explained == self.utt_a else self.utt_a

    @property
    def sibling(self) -> TrialJob:
        """A joint row's other side (the two are computed together)."""
        other = JOINT_SIDES[1 - JOINT_SIDES.index(self.side)]
        return TrialJob(
            self.list, self.utt_a, self.utt_b, other, self.method, self.base_a, self.base_b
        )

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.list, self.utt_a, self.utt_b, self.side, self.method)

    @property
    def quarantine_path(self) -> str:
        """How a failed job is named in quarantine.parquet."""
        return f"{self.list}:{self.utt_a}|{self.utt_b} [{self.method}/trial/{self.side}]"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def worst_errors(trials: list[Trial], k: int) -> list[Trial]:
    """The ``k`` highest-scoring false accepts and ``k`` lowest-scoring false rejects of each
    list at its EER threshold (accept when ``score >= threshold``), false accepts first."""
    out: list[Trial] = []
    for name in sorted({t.list for t in trials}):
        rows = [t for t in trials if t.list == name]
        labels = [t.label for t in rows]
        if len(set(labels)) < 2:
            log.warning("trial: list %s has only one class of trial, no EER threshold", name)
            continue
        thr = eer_threshold([t.score for t in rows], labels)
        fa = sorted((t for t in rows if t.label == 0 and t.score >= thr), key=lambda t: -t.score)
        fr = sorted((t for t in rows if t.label == 1 and t.score < thr), key=lambda t: t.score)
        out += fa[:k] + fr[:k]
    return out


def select_trials(trials: list[Trial], cfg: TrialConfig, seed: int) -> list[Trial]:
    """The trials to explain (see ``TrialConfig.select``), in a deterministic order."""
    if cfg.lists:
        trials = [t for t in trials if t.list in cfg.lists]
    if cfg.select == "all":
        return trials
    if cfg.select == "sample":
        n = min(cfg.sample, len(trials))
        idx = np.random.default_rng(seed).choice(len(trials), n, replace=False)
        return [trials[i] for i in sorted(idx)]
    return worst_errors(trials, cfg.worst_k)


def trial_jobs(
    selected: list[Trial], cfg: TrialConfig, pairs: dict[TrialKey, tuple[str, str]]
) -> list[TrialJob]:
    """The one-sided maps of every selected trial, then both rows of each joint decomposition
    (``pairs``: the trials' baseline pairs; a trial without one has none)."""
    one_sided = [
        TrialJob(t.list, t.utt_a, t.utt_b, side, method)
        for t in selected
        for side in cfg.sides
        for method in cfg.methods
    ]
    joint = [
        TrialJob(t.list, t.utt_a, t.utt_b, side, method, *pairs[(t.list, t.utt_a, t.utt_b)])
        for t in selected
        if (t.list, t.utt_a, t.utt_b) in pairs
        for method in joint_methods(cfg)
        for side in JOINT_SIDES
    ]
    return one_sided + joint


def joint_methods(cfg: TrialConfig) -> list[str]:
    """The methods of ``cfg.methods`` decomposed jointly (none when ``joint_baseline`` is
    ``none``)."""
    if cfg.joint_baseline == "none":
        return []
    return [m for m in cfg.methods if m in JOINT_METHODS]


#: per trial map: completeness error, s(x), s(x') (None: not defined / failed).
Numbers = tuple[float | None, float | None, float | None]
NONE: Numbers = (None, None, None)
#: one row's outcome: its job, its map (None: failed), its numbers and why it failed.
Result = tuple[TrialJob, np.ndarray | None, Numbers, Failure | None]
NON_FINITE = Failure(QuarantineCause.COMPUTE, "non-finite attribution")


def kept(job: TrialJob, m: np.ndarray, numbers: Sequence[float]) -> Result:
    """A computed map as a row (quarantined if not finite; NaN numbers are None)."""
    if not np.isfinite(m).all():
        return (job, None, NONE, NON_FINITE)
    err, score, base = (None if np.isnan(v) else float(v) for v in numbers)
    return (job, m, (err, score, base), None)


@dataclass(frozen=True)
class JointWork:
    """The joint decompositions of a pool: each pair's ``joint_a`` row by its utt_a (the
    streamed side), the features of their b sides and baseline pairs, and the baseline's name
    (``trial.joint_baseline``)."""

    jobs: dict[str, list[TrialJob]]
    partners: dict[str, np.ndarray]
    baseline: str


class ComputeTrialAttributions(ModelActor):
    """map_batches callable: every job whose explained side (a joint pair's a side) is an
    utterance of the batch."""

    def __init__(
        self,
        model: ModelRef,
        cfg: AttributionConfig,
        jobs: dict[str, list[TrialJob]],
        fixed: dict[str, np.ndarray],
        joint: JointWork,
        corpus_mean: np.ndarray | None,
        num_gpus: float,
        s3: object,
    ) -> None:
        super().__init__(model, num_gpus, s3)
        self.cfg = cfg
        self.jobs = jobs
        self.fixed = fixed
        self.joint = joint
        self.mean = corpus_mean

    def _run(self, x: np.ndarray, others: np.ndarray, method: str) -> tuple[np.ndarray, ...]:
        """One Captum call: maps ``(B, T, F)``, then ``(B,)`` each: completeness errors, the
        scores s(x) and the baseline's s(x') (NaN: none)."""
        feats = torch.from_numpy(x).to(self.device)
        base = None
        if self.cfg.baseline == "mean" and self.mean is not None:
            base = torch.from_numpy(self.mean).to(self.device).expand_as(feats).clone()
        with precision(self.cfg.precision, self.device):
            res = attribute_trials(
                self.model, feats, torch.from_numpy(others).to(self.device), method, self.cfg, base
            )

        def column(v: torch.Tensor | None) -> np.ndarray:
            return np.full(len(x), np.nan) if v is None else v.detach().double().cpu().numpy()

        numbers = (res.completeness_error, res.score, res.baseline_score)
        return (res.maps.detach().float().cpu().numpy(), *map(column, numbers))

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        mats = dict(zip(batch.column("utt_id").to_pylist(), schema.matrices(batch), strict=True))
        todo = [j for u in mats for j in self.jobs.get(u, [])]
        joint = [j for u in mats for j in self.joint.jobs.get(u, [])]
        return self._table(self._one_sided(mats, todo) + self._joint(mats, joint))

    def _one_sided(self, mats: dict[str, np.ndarray], todo: list[TrialJob]) -> list[Result]:
        """The one-sided maps of ``todo``, equal-length explained sides in one call."""
        results: list[Result] = []
        for method in dict.fromkeys(j.method for j in todo):
            rows = [j for j in todo if j.method == method]
            bad = {
                i: f
                for i, j in enumerate(rows)
                if (f := check_input(mats[j.explained], self.input_dim))
            }
            good = [i for i in range(len(rows)) if i not in bad]
            results += [(rows[i], None, NONE, f) for i, f in bad.items()]
            lengths = [mats[rows[i].explained].shape[0] for i in good]
            for group in equal_length_groups(lengths, GROUP_SIZE):
                members = [rows[good[k]] for k in group]

                def run(
                    sub: list[int], members: list[TrialJob] = members, method: str = method
                ) -> tuple[np.ndarray, ...]:
                    x = np.stack([mats[members[i].explained] for i in sub])
                    others = np.stack([self.fixed[members[i].fixed] for i in sub])
                    return self._run(x, others, method)

                for sub, res in compute_split(list(range(len(members))), run):
                    for k, i in enumerate(sub):
                        if isinstance(res, Failure):
                            results.append((members[i], None, NONE, res))
                        else:
                            results.append(kept(members[i], res[0][k], [v[k] for v in res[1:]]))
        return results

    def _joint(self, mats: dict[str, np.ndarray], todo: list[TrialJob]) -> list[Result]:
        """Both rows of each joint decomposition of ``todo`` (their ``joint_a`` rows), pairs of
        equal-length sides in one call; a pair fails or is kept as a whole."""
        feats = {**self.joint.partners, **mats}
        results: list[Result] = []
        good: list[TrialJob] = []
        for j in todo:
            utts = (j.utt_a, j.utt_b, j.base_a, j.base_b)
            f = next((f for u in utts if (f := check_input(feats[u], self.input_dim))), None)
            if f is None:
                good.append(j)
            else:
                results += [(j, None, NONE, f), (j.sibling, None, NONE, f)]
        shapes = [(len(feats[j.utt_a]), len(feats[j.utt_b])) for j in good]
        for group in equal_shape_groups(shapes, GROUP_SIZE):
            members = [good[k] for k in group]

            def run(sub: list[int], members: list[TrialJob] = members) -> tuple[np.ndarray, ...]:
                xa = np.stack([feats[members[i].utt_a] for i in sub])
                xb = np.stack([feats[members[i].utt_b] for i in sub])
                ra = np.stack([fit_frames(feats[members[i].base_a], xa.shape[1]) for i in sub])
                rb = np.stack([fit_frames(feats[members[i].base_b], xb.shape[1]) for i in sub])
                return run_joint(self.model, self.cfg, self.device, (xa, xb), (ra, rb))

            for sub, res in compute_split(list(range(len(members))), run):
                for k, i in enumerate(sub):
                    results += self._pair(members[i], res, k)
        return results

    @staticmethod
    def _pair(job: TrialJob, res: tuple[np.ndarray, ...] | Failure, k: int) -> list[Result]:
        """A joint pair's two rows from item ``k`` of a call's result (both failed if either
        map is not finite)."""
        if isinstance(res, Failure):
            return [(job, None, NONE, res), (job.sibling, None, NONE, res)]
        numbers = [v[k] for v in res[2:]]
        rows = [kept(job, res[0][k], numbers), kept(job.sibling, res[1][k], numbers)]
        if any(r[3] is not None for r in rows):
            return [(job, None, NONE, NON_FINITE), (job.sibling, None, NONE, NON_FINITE)]
        return rows

    def _table(self, results: list[Result]) -> pa.Table:
        empty = np.zeros(0, np.float32)
        jobs = [j for j, *_ in results]
        raw = [m for _, m, _, _ in results]
        maps = [empty if m is None else m for m in raw]
        failures = [f for *_, f in results]
        n = len(results)
        joint = [j.base_a is not None for j in jobs]
        return schema.table(
            BATCH,
            {
                "utt_id": [j.explained for j in jobs],
                "model": [self.model_name] * n,
                "method": [j.method for j in jobs],
                "pathway": [TRIAL.value] * n,
                "params": [params_json(j.method, self.cfg) for j in jobs],
                "target": [-1] * n,
                "num_frames": [0 if m is None else m.shape[0] for m in raw],
                "num_bins": [0 if m is None else m.shape[1] for m in raw],
                "values": schema.floats_column(maps),
                "freq_profile": schema.floats_column(
                    [empty if m is None else freq_profile(m) for m in raw]
                ),
                "completeness_error": [e[0] for _, _, e, _ in results],
                "score": [e[1] for _, _, e, _ in results],
                "baseline_score": [e[2] for _, _, e, _ in results],
                # a joint row's baseline: its name and the baseline pair (null on one-sided rows)
                "joint_baseline": [self.joint.baseline if k else None for k in joint],
                "baseline_utt_a": [j.base_a for j in jobs],
                "baseline_utt_b": [j.base_b for j in jobs],
                "list": [j.list for j in jobs],
                "utt_a": [j.utt_a for j in jobs],
                "utt_b": [j.utt_b for j in jobs],
                "side": [j.side for j in jobs],
                "path": [j.quarantine_path for j in jobs],
                "error": [
                    None if f is None else f"{j.method}/trial: {f.reason}"
                    for j, f in zip(jobs, failures, strict=True)
                ],
                "cause": [None if f is None else f.cause.value for f in failures],
            },
        )


def scored_trials(ctx: RunContext, model: str, have: set[str]) -> tuple[list[Trial], dict]:
    """The trials whose two sides have features and a whole-utterance embedding, scored by
    the cosine of those embeddings; and the embeddings."""
    emb, _ = load_embeddings(ctx, model, "none")
    t = ctx.out.read_table(TRIALS, columns=["list", "label", "utt_a", "utt_b"])
    trials = [
        Trial(lst, int(y), a, b, cosine(emb[a], emb[b]))
        for lst, y, a, b in zip(
            *(t.column(c).to_pylist() for c in ("list", "label", "utt_a", "utt_b")), strict=True
        )
        if a in emb and b in emb and a in have and b in have
    ]
    return trials, emb


def _joint_work(ctx: RunContext, kind: str, todo: list[TrialJob]) -> JointWork:
    """The joint pairs of ``todo`` (either row missing redoes both) by their a side, with the
    features of their b sides and baseline pairs read on the driver."""
    firsts = {j if j.side == JOINT_SIDES[0] else j.sibling for j in todo if j.side in JOINT_SIDES}
    jobs: dict[str, list[TrialJob]] = {}
    for j in sorted(firsts, key=lambda j: j.key):
        jobs.setdefault(j.utt_a, []).append(j)
    need = sorted({u for j in firsts for u in (j.utt_b, j.base_a, j.base_b)})
    partners: dict[str, np.ndarray] = {}
    if need:
        t = read_features(ctx.out, kind, need)
        partners = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
    return JointWork(jobs, partners, ctx.cfg.trial.joint_baseline)


def _compute(ctx: RunContext, model: ModelRef, kind: str, todo: list[TrialJob], emb: dict) -> None:
    """Stream the explained sides of ``todo`` (a joint pair's a side) through the pool, with
    the fixed sides' embeddings ``emb`` and the joint pairs' other features."""
    cfg, out = ctx.cfg, ctx.out
    by_utt: dict[str, list[TrialJob]] = {}
    for j in todo:
        if j.side not in JOINT_SIDES:
            by_utt.setdefault(j.explained, []).append(j)
    fixed = {j.fixed: emb[j.fixed] for lst in by_utt.values() for j in lst}
    joint = _joint_work(ctx, kind, todo)
    streamed = sorted(set(by_utt) | set(joint.jobs))
    a = cfg.attribution
    corpus_mean = baseline_mean(out, kind, a)
    rc = cfg.trial.resources
    res = actor_resources(rc)
    pool_to_sink(
        features_dataset(out, kind, streamed, rc.batch_size),
        ComputeTrialAttributions,
        (model, a, by_utt, fixed, joint, corpus_mean, res["num_gpus"], cfg.corpus.s3),
        rc,
        table_sink(out, ATTRIBUTIONS, ("utt_id", *TRIAL_KEYS), STAGE, rc.rows_per_file),
        res,
        total=len(streamed),
    )


def joint_info(cfg: TrialConfig, selected: list[Trial], pairs: dict) -> dict:
    """What the stage says of its joint decompositions: the baseline, the methods decomposed,
    why the others are not, and how many selected trials have no baseline pair."""
    methods = joint_methods(cfg)
    skipped = {m: NO_JOINT_PATH[m] for m in cfg.methods if m not in methods and m in NO_JOINT_PATH}
    for m, why in skipped.items():
        log.info("trial: no joint decomposition for %s: %s", m, why)
    missing = sum(1 for t in selected if (t.list, t.utt_a, t.utt_b) not in pairs) if methods else 0
    if missing:
        log.warning("trial: %d trials have no impostor trial for a baseline pair", missing)
    return {
        "baseline": cfg.joint_baseline,
        "methods": methods,
        "skipped": skipped,
        "without_baseline": missing,
    }


def run_trial(ctx: RunContext) -> StageResult:
    cfg, out = ctx.cfg, ctx.out
    result = StageResult(STAGE)
    if not cfg.trial.enabled:
        result.info = {"enabled": False}  # as the tune stage reports it
        return result.check()
    model = base_model(ctx)
    loaded = load_model(model.path, cfg.corpus.s3)
    kind = loaded.front_end.name
    have = featured_utterances(out, kind)
    trials, emb = scored_trials(ctx, model.name, have)
    selected = select_trials(trials, cfg.trial, cfg.seed)
    methods, left_out = defined_methods(cfg.trial.methods, loaded.classifier)
    for method, why in left_out.items():
        log.info("trial: %s left out: %s", method, why)
    tc = replace(cfg.trial, methods=tuple(methods))
    pairs = cohort_pairs(trials, selected) if joint_methods(tc) else {}
    wanted = trial_jobs(selected, tc, pairs)
    done = committed_keys(out, ATTRIBUTIONS, TRIAL_KEYS)
    failed = quarantined_paths(out, STAGE)
    todo = [j for j in wanted if j.key not in done and j.quarantine_path not in failed]
    result.inputs = len(wanted)
    log.info(
        "trial: %d of %d trials selected (%s), %d maps to compute",
        len(selected),
        len(trials),
        cfg.trial.select,
        len(todo),
    )
    if todo:
        _compute(ctx, model, kind, todo, emb)
    final = committed_keys(out, ATTRIBUTIONS, TRIAL_KEYS)
    quarantined = quarantined_paths(out, STAGE)
    result.outputs = sum(1 for j in wanted if j.key in final)
    result.quarantined = sum(
        1 for j in wanted if j.key not in final and j.quarantine_path in quarantined
    )
    result.info = {
        "model": model.name,
        "trials": len(selected),
        "select": cfg.trial.select,
        "methods": methods,
        "joint": joint_info(tc, selected, pairs),
    } | ({"partly_skipped": left_out} if left_out else {})
    return result.check()
