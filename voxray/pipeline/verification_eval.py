"""Verification scoring for every (model, condition) in embeddings/: scores/, metrics/, DET curves.

Full-utterance embeddings are scored by cosine for every model and condition; the
clustering scorers of Lehmann & Stadelmann 2020 (Mean-CosSim, Mean-DotProduct, AHC per linkage,
dominant sets) use the overlapping-segment embeddings of the base model on clean data. Optional
AS-norm takes its cohort from the training speakers' mean embeddings.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxray import schema
from voxray.eval.asnorm import as_norm, build_cohort
from voxray.eval.intervals import verification_interval
from voxray.eval.scoring import expand_scorers, score_trials, score_trials_segments
from voxray.eval.verification import det_curve
from voxray.log import get_logger
from voxray.pipeline.context import (
    CURVES,
    EMBEDDINGS,
    MANIFEST,
    METRICS,
    SCORES,
    TRIALS,
    RunContext,
)

log = get_logger(__name__)


def _slug(*parts: str) -> str:
    return "-".join(p.replace("/", "_").replace(":", "_").replace("@", "_") for p in parts if p)


def load_embeddings(
    ctx: RunContext, model: str, condition: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(full-utterance embeddings, stacked segment embeddings) of one model and condition."""
    t = ctx.out.read_table(
        EMBEDDINGS,
        columns=["utt_id", "segment", "embedding"],
        filter=(pc.field("model") == model) & (pc.field("condition") == condition),
    )
    utts = t.column("utt_id").to_pylist()
    segs = t.column("segment").to_numpy()
    embs = schema.column_arrays(t, "embedding")
    full = {u: e for u, s, e in zip(utts, segs, embs, strict=True) if s < 0}
    by_utt: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for u, s, e in zip(utts, segs, embs, strict=True):
        if s >= 0:
            by_utt[u].append((int(s), e))
    seg = {u: np.stack([e for _, e in sorted(v, key=lambda p: p[0])]) for u, v in by_utt.items()}
    return full, seg


def groups(ctx: RunContext) -> list[tuple[str, str]]:
    t = ctx.out.read_table(EMBEDDINGS, columns=["model", "condition"])
    pairs = set(zip(t.column("model").to_pylist(), t.column("condition").to_pylist(), strict=True))
    return sorted(pairs)


def verification_rows(
    ctx: RunContext,
    key: tuple[str, str, str, str],
    scores: np.ndarray,
    labels: np.ndarray,
    enrol: np.ndarray,
) -> list[schema.MetricRow]:
    """EER and minDCF rows of one (model, condition, list, scorer), each with its interval
    (resampled by enrolment speaker), and the trial count."""
    cfg = ctx.cfg.eval
    names = ["eer", *(f"mindcf_p{p:g}" for p in cfg.p_targets)]
    rows = []
    for metric in names:
        ci = verification_interval(
            scores,
            labels,
            enrol,
            metric,
            confidence=cfg.intervals.confidence,
            n_resamples=cfg.intervals.resamples,
            seed=cfg.intervals.seed,
        )
        rows.append(
            schema.MetricRow(*key, metric, ci.value, ci_low=ci.ci_low, ci_high=ci.ci_high, n=ci.n)
        )
    return [*rows, schema.MetricRow(*key, "trials", float(len(labels)), n=len(labels))]


def score_group(
    ctx: RunContext,
    model: str,
    condition: str,
    trials: pa.Table,
    with_segments: bool,
    cohort: np.ndarray | None,
    speaker_of: dict[str, str],
) -> list[str]:
    """Write scores/ and metrics/ for one (model, condition); returns the scorers used."""
    cfg = ctx.cfg.eval
    full, seg = load_embeddings(ctx, model, condition)
    scorers: list[str] = []
    for list_name in sorted(set(trials.column("list").to_pylist())):
        t = trials.filter(pc.field("list") == list_name)
        triples = list(
            zip(
                t.column("label").to_pylist(),
                t.column("utt_a").to_pylist(),
                t.column("utt_b").to_pylist(),
                strict=True,
            )
        )
        triples = [tr for tr in triples if tr[1] in full and tr[2] in full]
        if not triples:
            continue
        labels = np.array([tr[0] for tr in triples], dtype=np.int8)
        enrol = np.array([speaker_of.get(tr[1], tr[1]) for tr in triples])
        if labels.min() == labels.max():
            log.warning(
                "evaluate: %s has trials of one class only for %s/%s; skipped",
                list_name,
                model,
                condition,
            )
            continue
        by_scorer = {"cosine": score_trials(triples, full)}
        if cohort is not None:
            by_scorer["cosine-asnorm"] = as_norm(triples, full, cohort, ctx.cfg.eval.asnorm_top_k)
        if with_segments and all(tr[1] in seg and tr[2] in seg for tr in triples):
            for name in expand_scorers(cfg):
                if name == "cosine":
                    continue
                by_scorer[name] = score_trials_segments(triples, seg, name)
        for scorer, scores in by_scorer.items():
            write_scores(ctx, model, condition, list_name, scorer, triples, scores)
            rows = verification_rows(
                ctx, (model, condition, list_name, scorer), scores, labels, enrol
            )
            ctx.out.write_table(
                f"{METRICS}/verify-{_slug(model, condition, list_name, scorer)}.parquet",
                schema.metrics_table(rows),
            )
            if scorer == "cosine":
                fpr, fnr, _ = det_curve(scores, labels)
                write_curve(ctx, "det", model, f"{list_name}", condition, fpr, fnr)
        scorers = sorted(set(scorers) | set(by_scorer))
    return scorers


def write_scores(
    ctx: RunContext,
    model: str,
    condition: str,
    list_name: str,
    scorer: str,
    triples: list,
    scores: np.ndarray,
) -> None:
    n = len(triples)
    table = schema.table(
        schema.SCORES,
        {
            "list": [list_name] * n,
            "label": [tr[0] for tr in triples],
            "utt_a": [tr[1] for tr in triples],
            "utt_b": [tr[2] for tr in triples],
            "model": [model] * n,
            "condition": [condition] * n,
            "scorer": [scorer] * n,
            "score": np.asarray(scores, dtype=np.float64),
        },
    )
    ctx.out.write_table(f"{SCORES}/{_slug(model, condition, list_name, scorer)}.parquet", table)


def curve_table(
    experiment: str, model: str, method: str, variant: str, x: np.ndarray, y: np.ndarray
) -> pa.Table:
    """One curve's rows of curves/ (the points ``(x, y)`` and the keys naming the curve)."""
    keys = {"experiment": experiment, "model": model, "method": method, "variant": variant}
    columns: dict[str, object] = {k: [v] * len(x) for k, v in keys.items()}
    columns.update(x=np.asarray(x, np.float64), y=np.asarray(y, np.float64))
    return schema.table(schema.CURVES, columns)


def write_curve(
    ctx: RunContext,
    experiment: str,
    model: str,
    method: str,
    variant: str,
    x: np.ndarray,
    y: np.ndarray,
) -> None:
    table = curve_table(experiment, model, method, variant, x, y)
    ctx.out.write_table(f"{CURVES}/{_slug(experiment, model, method, variant)}.parquet", table)


def cohort_embeddings(ctx: RunContext, model: str) -> np.ndarray | None:
    """Mean full-utterance embedding per training speaker (the AS-norm cohort)."""
    full, _ = load_embeddings(ctx, model, "none")
    m = ctx.out.read_table(
        MANIFEST, columns=["utt_id", "speaker_id"], filter=pc.field("split") == "train"
    )
    pairs = [
        (u, s)
        for u, s in zip(
            m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True
        )
        if u in full
    ]
    if len({s for _, s in pairs}) < 2:
        return None
    return build_cohort(
        np.stack([full[u] for u, _ in pairs]),
        [s for _, s in pairs],
        size=ctx.cfg.eval.asnorm_cohort,
        seed=ctx.cfg.seed,
    )


def speakers_by_utterance(ctx: RunContext) -> dict[str, str]:
    """utt_id -> speaker_id of every manifest utterance (a trial's enrolment speaker)."""
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "speaker_id"])
    return dict(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    )


def run_verification(ctx: RunContext, base_model_name: str) -> dict[str, object]:
    trials = ctx.out.read_table(TRIALS)
    speaker_of = speakers_by_utterance(ctx)
    done = []
    for model, condition in groups(ctx):
        base_clean = model == base_model_name and condition == "none"
        cohort = cohort_embeddings(ctx, model) if (ctx.cfg.eval.asnorm and base_clean) else None
        scorers = score_group(
            ctx,
            model,
            condition,
            trials,
            with_segments=base_clean,
            cohort=cohort,
            speaker_of=speaker_of,
        )
        done.append({"model": model, "condition": condition, "scorers": scorers})
    return {"groups": done}
