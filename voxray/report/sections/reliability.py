"""Reliability of the attributions (Zhang et al. 2023, Table 2): EERs of the frozen and the
retrained model on data masked with the attributions, beside a shuffled-map control, and the
verdict on Table 2's EER order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from voxray.config.conditions import SEEN_CLASSIFICATION, own_maps_condition, parse_masked
from voxray.config.evaluation import IntervalConfig
from voxray.config.retrain_names import DEFAULT_VARIANT, retraining_of
from voxray.eval.intervals import Interval
from voxray.report.effects import pooled_eer_effect
from voxray.report.html import Note, Section, Table
from voxray.report.metrics import (
    EER,
    empty_table,
    interval_of,
    interval_text,
    last_value,
    mindcf_metrics,
    mindcf_name,
    select_rows,
    verification_rows,
)
from voxray.report.names import condition_name
from voxray.report.sections.base import ReportContext, missing, section
from voxray.report.verdicts import Check, Verdict, against_bound, between, verdict

TITLE = "Reliability of the attributions: retraining on masked data (Table 2 of Zhang et al. 2023)"
INTRO = (
    "Each row masks the features with an attribution (attribution x input; '+ mask(tau, "
    "reading)' also zeroes bins whose attribution, read signed (A / max A) or as magnitude "
    "(|A| / max|A|), is not above tau). By default every utterance, training and test, is "
    "masked with its Traversal map (one class-free pathway, as the seed masked all its data "
    "with one). The seen-classification variant masks the training speakers' utterances with "
    "their Classification map instead (test speakers, never seen in training, keep Traversal): "
    "its class leak is measured below. The frozen base model is tested on the masked test "
    "data; a model retrained on the masked training data, with the base model's recipe, is "
    "tested on masked and on clean test data. Each condition's shuffled-map control masks "
    "every utterance with another speaker's map, keeping as many bins: masked-test EERs well "
    "below it mean the maps carry the speaker. A retrained model is trained once per seed "
    "(retrain.seeds) and variant (retrain.variants: from scratch, or continued from the base "
    "model's weights); its columns show the mean over the seeds, each seed's EER beside, and "
    "the verdict bootstraps the seeds with the speakers. The seed's VoxCeleb1 EERs are shown "
    "for reference."
)

#: Table 2 of Zhang et al. 2023 (ECAPA-TDNN, VoxCeleb1, EER %): (method, rule, threshold) -> EER;
#: None = clean.
SEED_000_EER: dict[tuple[str, str, float | None] | None, float] = {
    None: 3.48,
    ("integrated_gradients", "product", None): 4.21,
    ("integrated_gradients", "threshold", 0.1): 4.29,
    ("gradient_shap", "product", None): 4.55,
}
#: Table 2's column groups: (heading, model, test data); "base"/"retrained", "masked"/"clean".
RELIABILITY_GROUPS = (
    ("Base, masked test", "base", "masked"),
    ("Retrained, masked test", "retrained", "masked"),
    ("Retrained, clean test", "retrained", "clean"),
)
CONTROL = "Shuffled-map control"


def retrained_models(
    metrics: pd.DataFrame | None, base: str, condition: str | None
) -> dict[str, list[str]]:
    """The models retrained on ``condition``'s masked data (the non-base models evaluated on
    it), by variant (scratch first), each variant's seeds in seed order."""
    rows = verification_rows(metrics)
    models = set(rows.loc[(rows["condition"] == condition) & (rows["model"] != base), "model"])
    by_variant: dict[str, list[str]] = {}
    for variant, _, model in sorted((*retraining_of(m), m) for m in models):
        by_variant.setdefault(variant, []).append(model)
    return dict(sorted(by_variant.items(), key=lambda kv: kv[0] != DEFAULT_VARIANT))


def _variant_label(name: str, variant: str, variants: Sequence[str]) -> str:
    """The row label: the condition, then its variant where the run has another one."""
    return name if variants == [DEFAULT_VARIANT] else f"{name} [{variant}]"


def _seed_eer(condition: str) -> float:
    if condition == "none":
        return SEED_000_EER[None]
    parsed = parse_masked(condition)
    if parsed is None or parsed.shuffled:
        return float("nan")
    key = (parsed.method, parsed.rule, parsed.value if parsed.rule == "threshold" else None)
    return SEED_000_EER.get(key, float("nan"))


def _masked_conditions(
    rows: pd.DataFrame, condition_order: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """The masked conditions shown as rows (in ``condition_order``, then by name) and, per
    shown condition, its shuffled-map control."""
    masked = sorted(
        {c for c in rows["condition"] if parse_masked(str(c))},
        key=lambda c: (
            list(condition_order).index(c) if c in condition_order else len(condition_order),
            c,
        ),
    )
    control_of = {
        own_maps_condition(c): c
        for c in masked
        if parse_masked(c).shuffled and own_maps_condition(c) in masked
    }
    return [c for c in masked if c not in control_of.values()], control_of


SEEDS = "Seeds"


def _reliability_columns(dcf: str) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples(
        [(g, m) for g, _, _ in RELIABILITY_GROUPS for m in (EER, mindcf_name(dcf))]
        + [(CONTROL, f"Base, masked test {EER}"), (CONTROL, f"Retrained, masked test {EER}")]
        + [(SEEDS, "n"), (SEEDS, f"Retrained, masked test {EER}, each")]
        + [("Zhang et al. 2023 (VoxCeleb1)", EER)]
    )


def _mean(rows: pd.DataFrame, models: Sequence[str | None], cond: str | None, metric: str) -> float:
    """The seeds' mean of ``metric`` (NaN without models or rows)."""
    values = [last_value(rows, model=m, condition=cond, metric=metric) for m in models]
    return float(np.mean(values)) if values else float("nan")


def _condition_row(
    rows: pd.DataFrame,
    base: str,
    cond: str,
    models: list[str],
    control: tuple[str | None, list[str]],
    dcf: str,
) -> list[Any]:
    """One Table 2 row: each group's EER (%) / minDCF, the retrained ones the mean over
    ``models`` (a variant's seeds), the shuffled-map control ``(condition, its models)``, the
    seeds' count and each one's masked-test EER, the seed paper's EER."""
    values: list[Any] = []
    for _, who, data in RELIABILITY_GROUPS:
        group: Sequence[str | None] = [base] if who == "base" else models
        c = cond if data == "masked" else "none"
        values += [100 * _mean(rows, group, c, "eer"), _mean(rows, group, c, dcf)]
    ctl, ctl_models = control
    values += [100 * _mean(rows, [base], ctl, "eer"), 100 * _mean(rows, ctl_models, ctl, "eer")]
    each = ", ".join(f"{100 * _mean(rows, [m], cond, 'eer'):.2f}" for m in models)
    return [*values, str(len(models)), each, _seed_eer(cond)]


def reliability_table(
    metrics: pd.DataFrame | None,
    base: str,
    list_name: str,
    scorer: str = "cosine",
    condition_order: Sequence[str] = (),
) -> pd.DataFrame:
    """Table 2 of Zhang et al. 2023, one row per mask condition and retraining variant (named
    where the run has several): EER (%) and minDCF of the frozen base model on the masked test
    data, and of the model retrained on the masked training data on masked and on clean test
    data, the mean over its seeds (``retrain.seeds``; the Seeds columns give their number and
    each one's masked-test EER). Beside them, the condition's shuffled-map control (the same
    rule with another speaker's maps, as many bins kept): the base and the retrained model (of
    the same variant) on its masked test data, EER (%). Masked-test EERs well below the
    control's mean the maps carry the speaker; equal ones, that they do not. Last, the seed's
    VoxCeleb1 EER. The row None is the base model on clean data (the reference for every
    column)."""
    rows = select_rows(verification_rows(metrics), list=list_name, scorer=scorer)
    if rows.empty:
        return empty_table()
    dcf = (mindcf_metrics(rows) or ["mindcf_p0.01"])[0]
    shown, control_of = _masked_conditions(rows, condition_order)
    labels, data = [], []
    clean = [100 * _mean(rows, [base], "none", "eer"), _mean(rows, [base], "none", dcf)]
    nan = float("nan")
    if not np.isnan(clean[0]):
        labels.append(condition_name("none"))
        data.append([*clean * len(RELIABILITY_GROUPS), nan, nan, "", "", _seed_eer("none")])
    for cond in shown:
        ctl = control_of.get(cond)
        controls = retrained_models(rows, base, ctl) if ctl else {}
        variants = retrained_models(rows, base, cond) or {DEFAULT_VARIANT: []}
        for variant, models in variants.items():
            labels.append(_variant_label(condition_name(cond), variant, list(variants)))
            control = (ctl, controls.get(variant, []))
            data.append(_condition_row(rows, base, cond, models, control, dcf))
    if not data:
        return empty_table()
    index = pd.Index(labels, name="Attribution mask")
    return pd.DataFrame(data, index=index, columns=_reliability_columns(dcf))


def _metric_interval(rows: pd.DataFrame, systems: Sequence[tuple[str, str]]) -> Interval:
    """metrics/' EER interval of one system; of several seeds (no scores/ to pool them by),
    their mean inside the envelope of their intervals."""
    found = [interval_of(rows, model=m, condition=c, metric="eer") for m, c in systems]
    if len(found) == 1:
        return found[0]
    low, high = np.min([f.ci_low for f in found]), np.max([f.ci_high for f in found])
    value = float(np.mean([f.value for f in found]))
    return Interval(value, float(low), float(high), found[0].n, f"{len(found)} seeds' envelope")


@dataclass
class _EerComparison:
    """Table 2's comparisons on one list: EER(ones) against ``bound`` x EER(others) (bound 0:
    the difference against 0), each side its seeds' mean: paired on scores/ where the run kept
    them, else by the metrics/ intervals. ``method`` names how the last paired one was made."""

    scores: pd.DataFrame | None
    manifest: pd.DataFrame | None
    rows: pd.DataFrame
    list_name: str
    intervals: IntervalConfig
    scorer: str
    method: str = ""

    def check(
        self, label: str, ones: list[tuple[str, str]], others: list[tuple[str, str]], bound: float
    ) -> Check:
        effect = "ratio" if bound else "difference"
        paired = pooled_eer_effect(
            self.scores,
            self.manifest,
            [(*o, self.scorer) for o in ones],
            [(*o, self.scorer) for o in others],
            self.list_name,
            self.intervals,
            effect,
        )
        if paired is not None:
            scale, unit = (1.0, "") if bound else (100.0, " pt")
            self.method = f"paired on {self.list_name}, {paired.method}"
            return against_bound(label, paired, bound, "below", scale, unit)
        a, b = _metric_interval(self.rows, ones), _metric_interval(self.rows, others)
        if bound:  # the other EER's interval times the tolerated factor
            b = Interval(bound * b.value, bound * b.ci_low, bound * b.ci_high, b.n, b.method)
        return between(label, a, b, "below", 100, "%")


def reliability_verdict(
    metrics: pd.DataFrame | None,
    scores: pd.DataFrame | None,
    manifest: pd.DataFrame | None,
    base: str,
    list_name: str,
    intervals: IntervalConfig,
    factor: float,
    scorer: str = "cosine",
    seen_classification: bool = False,
) -> Verdict:
    """Zhang et al. 2023 Table 2 as the paper states it: for every masked condition and
    retraining variant, (a) the retrained model's masked-test EER is at most ``factor`` times
    the base model's clean EER (the seed's 4.21 / 3.48 = 1.21), and (b) it is below the EER of
    the model retrained (same variant) on the condition's shuffled maps. Each effect is a paired
    ratio / difference on the same trials, judged by its speaker-bootstrap interval; with
    several seeds, of the seeds' mean EER, bootstrapped over speakers and seeds
    (voxray.eval.intervals.seed_pooled_interval).

    The claim is judged on the class-free designs (one pathway over all data, as the seed
    masked); ``seen_classification`` judges the seen-classification design alone instead, a
    verdict of its own beside the claim's: its training inputs carry a class code the test
    inputs lack (the class-leak table), so its outcome is not the claim's test."""
    claim = (
        f"Zhang et al. 2023: retraining on attribution-masked data costs little (masked-retrained "
        f"EER at most {factor:g}x the clean EER, and below its shuffled-map control)"
    )
    if seen_classification:
        claim += (
            "; the seen-classification design, whose training inputs carry a class code "
            "(class leak below): beside the claim, not its test"
        )
    rows = select_rows(verification_rows(metrics), list=list_name, scorer=scorer)
    shown, control_of = _masked_conditions(rows, ())
    compare = _EerComparison(scores, manifest, rows, list_name, intervals, scorer)
    checks: list[Check] = []
    for cond in shown:
        if (parse_masked(cond).pathway == SEEN_CLASSIFICATION) != seen_classification:
            continue
        ctl = control_of.get(cond)
        controls = retrained_models(rows, base, ctl) if ctl else {}
        variants = retrained_models(rows, base, cond)
        for variant, models in variants.items():
            name = _variant_label(condition_name(cond), variant, list(variants))
            pooled = f" (mean of {len(models)} seeds)" if len(models) > 1 else ""
            ones = [(m, cond) for m in models]
            label = f"{name} EER{pooled} vs {factor:g} x clean EER"
            checks.append(compare.check(label, ones, [(base, "none")], factor))
            if ctl and controls.get(variant):
                others = [(m, ctl) for m in controls[variant]]
                label = f"{name} EER{pooled} vs its shuffled-map control"
                checks.append(compare.check(label, ones, others, 0))
    return verdict(
        claim,
        checks,
        "needs the retrained models' EERs on masked test data and the base model's clean EER",
        compare.method,
    )


LEAK_COLUMNS = (
    "Masked inputs (%)",
    "Masked 95% CI (%)",
    "Raw inputs (%)",
    "Raw 95% CI (%)",
    "Chance (%)",
    "Utterances",
)


def leak_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Per own-map condition (the mask stage's ``leak`` rows): the nearest-centroid accuracy (%)
    of recovering a training utterance's class from its masked input against its raw input.
    A masked accuracy far above the raw one is a class code the test data does not have;
    chance (one over the speakers) is where inputs without a voice code sit."""
    rows = select_rows(metrics, list="leak", metric="class_recovery")
    if rows.empty:
        return empty_table()
    chance = select_rows(metrics, list="leak", metric="class_chance")
    data, labels = [], []
    for cond in sorted(set(rows["condition"].astype(str)) - {"none"}):
        masked = interval_of(rows, condition=cond)
        raw = interval_of(rows, condition="none", scorer=own_maps_condition(cond[len("masked:") :]))
        labels.append(condition_name(cond))
        data.append(
            [
                100 * masked.value,
                interval_text(masked, 100),
                100 * raw.value,
                interval_text(raw, 100),
                _chance(chance, cond[len("masked:") :]),
                masked.n,
            ]
        )
    index = pd.Index(labels, name="Attribution mask")
    return pd.DataFrame(
        data,
        index=index,
        columns=list(LEAK_COLUMNS),
    )


def _chance(rows: pd.DataFrame, scorer: str) -> float:
    """The chance level (%) of a leak measure (NaN where its outputs predate the row)."""
    match = rows[rows["scorer"].astype(str) == own_maps_condition(scorer)] if len(rows) else rows
    return 100 * float(match["value"].iloc[0]) if len(match) else float("nan")


def seeds_note(stages: dict[str, dict[str, Any]]) -> str:
    """What the retrain stage ran: seeds per condition and variants (the stage's record)."""
    record = stages.get("retrain", {})
    if "seeds" not in record:
        return ""
    seeds, variants = record["seeds"], ", ".join(record.get("variants", []))
    one = " (one retraining per condition: the spread across seeds is not measured)"
    spread = one if seeds == 1 else ""
    return f"Retrainings: {seeds} seed(s) per condition{spread}; variants: {variants}."


@section("reliability", TITLE, INTRO, order=30)
def reliability(ctx: ReportContext, s: Section) -> None:
    if not ctx.lists:
        s.blocks.append(missing("no verification metrics in metrics/"))
        return
    order = [c.parts.masked for c in ctx.cfg.mask.conditions]
    t = reliability_table(ctx.out.metrics, ctx.base, ctx.lists[0], condition_order=order)
    if t.empty or len(t) < 2:
        s.blocks.append(
            missing("no masked-data conditions in metrics/ (the mask and retrain stages)")
        )
    if not t.empty:
        s.blocks.append(Table(t, f"Trial list {ctx.lists[0]}, cosine scoring"))
    note = seeds_note(ctx.out.stages)
    if note:
        s.blocks.append(Note(note))
    leak = leak_table(ctx.out.metrics)
    if not leak.empty:
        s.blocks.append(
            Table(
                leak,
                "Class leak: leave-one-out nearest-centroid accuracy of recovering a training "
                "utterance's speaker from its time-averaged input, masked vs raw (95% speaker "
                "bootstrap intervals)",
            )
        )
    for seen in (False, True):
        v = reliability_verdict(
            ctx.out.metrics,
            ctx.out.scores,
            ctx.out.manifest,
            ctx.base,
            ctx.lists[0],
            ctx.cfg.eval.intervals,
            ctx.cfg.report.verdicts.retrain_eer_factor,
            seen_classification=seen,
        )
        if not seen or v.status != "not computed":  # the variant only where it ran
            s.verdicts.append(v)
