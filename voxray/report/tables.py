"""Pure functions from the output tables (pandas) to the small tables the report shows.

Each function takes the metrics/ rows (columns model, condition, list, scorer, metric,
value; EER and rates as fractions) or another output table and returns a display frame:
row labels in the index, columns labelled with their unit (``EER (%)`` holds percentages),
NaN where a value was not computed. An empty frame means "nothing of this kind in the run".
Column MultiIndexes (two levels) group columns as the seed papers' tables do.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from voxray.attribution.base import Pathway
from voxray.report.names import (
    ANALYSIS_LISTS,
    MULTISPEAKER_LIST,
    REFERENCES,
    condition_name,
    fraction_label,
    method_name,
    method_pathway_name,
    order_lists,
    own_maps_condition,
    parse_masked,
    scorer_name,
    scorer_order,
    short_method_name,
)

#: Table 2 of Zhang et al. 2023 (ECAPA-TDNN, VoxCeleb1, EER %): (method, rule, threshold) -> EER;
#: None = clean.
SEED_000_EER: dict[tuple[str, str, float | None] | None, float] = {
    None: 3.48,
    ("integrated_gradients", "product", None): 4.21,
    ("integrated_gradients", "threshold", 0.1): 4.29,
    ("gradient_shap", "product", None): 4.55,
}
#: Table 1 of Sarvaš 2021 (AlexNet gender classifier on AudioMNIST): model -> (acc % at 0%, at 0.5%
#: flipped).
SEED_002_GENDER = {"alexnet-gender": (97.8, 12.3), "alexnet-gender-augmented": (98.7, 28.4)}
EER = "EER (%)"
VERIFICATION_METRIC = re.compile(r"^(eer|trials|mindcf_p.+)$")


def _empty() -> pd.DataFrame:
    return pd.DataFrame()


def _rows(metrics: pd.DataFrame | None, **equal: Any) -> pd.DataFrame:
    """The metrics rows whose columns equal the given values (an empty frame for None)."""
    if metrics is None or metrics.empty:
        return pd.DataFrame(columns=["model", "condition", "list", "scorer", "metric", "value"])
    mask = np.ones(len(metrics), dtype=bool)
    for column, value in equal.items():
        mask &= (metrics[column] == value).to_numpy()
    return metrics[mask]


def _value(metrics: pd.DataFrame, **equal: Any) -> float:
    rows = _rows(metrics, **equal)
    return float(rows["value"].iloc[-1]) if len(rows) else float("nan")


def _mindcf_name(metric: str) -> str:
    return f"minDCF (p={metric[len('mindcf_p') :]})"


def verification_rows(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """The rows that are verification results (trial lists, not the analyses' lists)."""
    rows = _rows(metrics)
    keep = rows["metric"].astype(str).str.match(VERIFICATION_METRIC) & ~rows["list"].isin(
        ANALYSIS_LISTS
    )
    return rows[keep]


def trial_lists(metrics: pd.DataFrame | None, preferred: Sequence[str] = ()) -> list[str]:
    return order_lists(verification_rows(metrics)["list"].astype(str), preferred)


def _mindcf_metrics(rows: pd.DataFrame) -> list[str]:
    names = {m for m in rows["metric"] if str(m).startswith("mindcf_p")}

    def p(name: str) -> float:
        try:
            return float(name[len("mindcf_p") :])
        except ValueError:
            return float("inf")

    return sorted(names, key=lambda n: (p(n), n))


def verification_table(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> pd.DataFrame:
    """EER (%) and minDCF per model x condition x trial list x scorer (base model and clean data
    first)."""
    rows = verification_rows(metrics)
    if rows.empty:
        return _empty()
    dcfs = _mindcf_metrics(rows)
    lists = order_lists(rows["list"].astype(str), preferred_lists)
    wide = rows.pivot_table(
        index=["model", "condition", "list", "scorer"],
        columns="metric",
        values="value",
        aggfunc="last",
    )
    keys = sorted(
        wide.index,
        key=lambda k: (
            k[0] != base,
            k[0],
            k[1] != "none",
            k[1],
            lists.index(k[2]),
            scorer_order(k[3]),
        ),
    )
    out = pd.DataFrame(
        {
            "Model": [k[0] for k in keys],
            "Condition": [condition_name(k[1]) for k in keys],
            "Trial list": [k[2] for k in keys],
            "Scorer": [scorer_name(k[3]) for k in keys],
            EER: [100 * wide.loc[k].get("eer", np.nan) for k in keys],
            **{_mindcf_name(d): [wide.loc[k].get(d, np.nan) for k in keys] for d in dcfs},
            "Trials": [wide.loc[k].get("trials", np.nan) for k in keys],
        }
    )
    return out.set_index("Model")


def retrained_model(metrics: pd.DataFrame | None, base: str, condition: str) -> str | None:
    """The model retrained on ``condition``'s masked data: the non-base model evaluated on it."""
    rows = verification_rows(metrics)
    models = sorted(
        set(rows.loc[(rows["condition"] == condition) & (rows["model"] != base), "model"])
    )
    return models[0] if models else None


def _seed_eer(condition: str) -> float:
    if condition == "none":
        return SEED_000_EER[None]
    parsed = parse_masked(condition)
    if parsed is None or parsed.shuffled or parsed.pathway == Pathway.TRAVERSAL:
        return float("nan")
    key = (parsed.method, parsed.rule, parsed.value if parsed.rule == "threshold" else None)
    return SEED_000_EER.get(key, float("nan"))


#: Table 2's column groups: (heading, model, test data); "base"/"retrained", "masked"/"clean".
RELIABILITY_GROUPS = (
    ("Base, masked test", "base", "masked"),
    ("Retrained, masked test", "retrained", "masked"),
    ("Retrained, clean test", "retrained", "clean"),
)
CONTROL = "Shuffled-map control"


def reliability_table(
    metrics: pd.DataFrame | None,
    base: str,
    list_name: str,
    scorer: str = "cosine",
    condition_order: Sequence[str] = (),
) -> pd.DataFrame:
    """Table 2 of Zhang et al. 2023, one row per mask condition: EER (%) and minDCF of the frozen
    base model
    on the masked test data, and of the model retrained on the masked training data on masked
    and on clean test data. Beside them, the condition's shuffled-map control (the same rule
    with another speaker's maps, as many bins kept): the base and the retrained model on its
    masked test data, EER (%). Masked-test EERs well below the control's mean the maps carry
    the speaker; equal ones, that they do not. Last, the seed's VoxCeleb1 EER. The row None is
    the base model on clean data (the reference for every column)."""
    rows = _rows(verification_rows(metrics), list=list_name, scorer=scorer)
    if rows.empty:
        return _empty()
    dcf = (_mindcf_metrics(rows) or ["mindcf_p0.01"])[0]
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
    shown = [c for c in masked if c not in control_of.values()]

    def eer(model: str | None, cond: str) -> float:
        return 100 * _value(rows, model=model, condition=cond, metric="eer")

    def results(cond: str) -> list[float]:
        retrained = retrained_model(rows, base, cond)
        values = []
        for _, who, data in RELIABILITY_GROUPS:
            model = base if who == "base" else retrained
            c = cond if data == "masked" else "none"
            values += [eer(model, c), _value(rows, model=model, condition=c, metric=dcf)]
        return values

    labels, data = [], []
    clean = (eer(base, "none"), _value(rows, model=base, condition="none", metric=dcf))
    nan = float("nan")
    if not np.isnan(clean[0]):
        labels.append(condition_name("none"))
        data.append([*clean * len(RELIABILITY_GROUPS), nan, nan, _seed_eer("none")])
    for cond in shown:
        ctl = control_of.get(cond)
        control = (
            [eer(base, ctl), eer(retrained_model(rows, base, ctl), ctl)] if ctl else [nan, nan]
        )
        labels.append(condition_name(cond))
        data.append([*results(cond), *control, _seed_eer(cond)])
    if not data:
        return _empty()
    columns = pd.MultiIndex.from_tuples(
        [(g, m) for g, _, _ in RELIABILITY_GROUPS for m in (EER, _mindcf_name(dcf))]
        + [(CONTROL, f"Base, masked test {EER}"), (CONTROL, f"Retrained, masked test {EER}")]
        + [("Zhang et al. 2023 (VoxCeleb1)", EER)]
    )
    return pd.DataFrame(data, index=pd.Index(labels, name="Attribution mask"), columns=columns)


def clustering_table(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> pd.DataFrame:
    """Tables 3-4 of Lehmann & Stadelmann 2020: EER (%) of the base model on clean data per scorer
    (rows: cosine,
    Mean-DotProduct, Mean-CosSim, AHC-*, DS-*) and trial list (columns)."""
    rows = verification_rows(metrics)
    rows = rows[(rows["model"] == base) & (rows["condition"] == "none") & (rows["metric"] == "eer")]
    if rows.empty:
        return _empty()
    lists = order_lists(rows["list"].astype(str), preferred_lists)
    wide = rows.pivot_table(index="scorer", columns="list", values="value", aggfunc="last")
    scorers = sorted(wide.index, key=scorer_order)
    data = [[100 * wide.loc[s].get(lst, np.nan) for lst in lists] for s in scorers]
    return pd.DataFrame(
        data,
        index=pd.Index([scorer_name(s) for s in scorers], name="Scorer"),
        columns=[f"{lst} EER (%)" for lst in lists],
    )


def _reference_last(conditions: Sequence[str]) -> list[str]:
    refs = [r for r in REFERENCES if r in conditions]
    return sorted(c for c in conditions if c not in REFERENCES) + refs


def _condition_label(condition: str) -> str:
    if condition in REFERENCES:
        return f"{method_name(condition)} (reference)"
    return method_pathway_name(condition)


def faithfulness_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Deletion / insertion AUC per method (rows, references last) and scorer (column groups).
    Deletion: lower is better; insertion: higher is better."""
    rows = _rows(metrics, list="faithfulness")
    rows = rows[rows["metric"].isin(["deletion_auc", "insertion_auc"])]
    if rows.empty:
        return _empty()
    wide = rows.pivot_table(
        index="condition", columns=["scorer", "metric"], values="value", aggfunc="last"
    )
    conditions = _reference_last(list(wide.index))
    scorers = sorted({s for s, _ in wide.columns})
    names = {"deletion_auc": "Deletion AUC", "insertion_auc": "Insertion AUC"}
    cols = [
        (s, m) for s in scorers for m in ("deletion_auc", "insertion_auc") if (s, m) in wide.columns
    ]
    data = [[wide.loc[c, col] for col in cols] for c in conditions]
    columns = pd.MultiIndex.from_tuples([(f"scorer: {s}", names[m]) for s, m in cols])
    return pd.DataFrame(
        data,
        index=pd.Index([_condition_label(c) for c in conditions], name="Method"),
        columns=columns,
    )


def _fraction(metric: str) -> float:
    try:
        return float(metric.split("@", 1)[1])
    except (IndexError, ValueError):
        return float("nan")


def _accuracy_by_fraction(rows: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    rows = rows[rows["metric"].astype(str).str.startswith("acc@")]
    if rows.empty:
        return _empty()
    rows = rows.assign(fraction=[_fraction(m) for m in rows["metric"]])
    rows = rows[~rows["fraction"].isna()]
    return rows.pivot_table(index=index, columns="fraction", values="value", aggfunc="last")


def pixel_flipping_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Accuracy (%) after flipping the most relevant fraction of bins, per model and method
    (rows; random flipping last) and fraction (columns)."""
    wide = _accuracy_by_fraction(_rows(metrics, list="pixel_flipping"), ["model", "condition"])
    if wide.empty:
        return _empty()
    keys = sorted(wide.index, key=lambda k: (k[0], k[1] in REFERENCES, k[1]))
    data = [[100 * v for v in wide.loc[k]] for k in keys]
    index = pd.MultiIndex.from_tuples(
        [(k[0], _condition_label(k[1])) for k in keys], names=["Model", "Flipped by"]
    )
    return pd.DataFrame(
        data, index=index, columns=[f"Acc. (%) at {fraction_label(f)}" for f in wide.columns]
    )


def gender_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Table 1 of Sarvaš 2021: accuracy (%) of the gender classifiers before and after flipping the
    most relevant 0.5% of bins (rows: model x flipping method, random flipping last), with
    the seed's AudioMNIST figures beside."""
    wide = _accuracy_by_fraction(_rows(metrics, list="gender"), ["model", "condition"])
    if wide.empty:
        return _empty()
    keys = sorted(wide.index, key=lambda k: (k[0], k[1] in REFERENCES, k[1]))
    data = []
    for model, cond in keys:
        seed = SEED_002_GENDER.get(model) if cond not in REFERENCES else None
        data.append(
            [100 * v for v in wide.loc[(model, cond)]]
            + [seed[0] if seed else np.nan, seed[1] if seed else np.nan]
        )
    columns = pd.MultiIndex.from_tuples(
        [("This run", f"Acc. (%) at {fraction_label(f)}") for f in wide.columns]
        + [
            ("Sarvaš 2021 (AudioMNIST)", "Acc. (%) at 0%"),
            ("Sarvaš 2021 (AudioMNIST)", "Acc. (%) at 0.5%"),
        ]
    )
    index = pd.MultiIndex.from_tuples(
        [(m, _condition_label(c) if c != "none" else "relevance") for m, c in keys],
        names=["Model", "Flipped by"],
    )
    return pd.DataFrame(data, index=index, columns=columns)


def _layer_order(spec: str) -> tuple[int, str]:
    return (spec.count("+"), spec)


def multispeaker_table(
    metrics: pd.DataFrame | None, cases: Sequence[str] = (), metric: str = "top1"
) -> pd.DataFrame:
    """Table 2 of Li et al. 2022: Top-1 (%) of the target speaker in concatenated utterances, masked
    by
    each method's saliency at each layer setting (rows: Original, then layer specs; column
    groups: case, columns: method). ``metric`` may also be precision or recall."""
    rows = _rows(metrics)
    rows = rows[(rows["list"] == MULTISPEAKER_LIST) & (rows["metric"] == metric)]
    if rows.empty:
        return _empty()
    found = list(dict.fromkeys(rows["case"]))
    case_list = [c for c in cases if c in found] + sorted(c for c in found if c not in cases)
    parsed = [(str(c).partition("@")[0], str(c).partition("@")[2]) for c in rows["condition"]]
    rows = rows.assign(method=[p[0] for p in parsed], layers=[p[1] for p in parsed])
    methods = sorted({m for m, layers in parsed if m != "original"})
    specs = sorted({layers for m, layers in parsed if m != "original"}, key=_layer_order)
    index = (["Original"] if (rows["method"] == "original").any() else []) + specs
    columns = pd.MultiIndex.from_tuples(
        [(c, short_method_name(m)) for c in case_list for m in methods]
    )
    out = pd.DataFrame(np.nan, index=pd.Index(index, name="Setting"), columns=columns)
    for r in rows.itertuples(index=False):
        if r.method == "original":
            for m in methods:
                out.loc["Original", (r.case, short_method_name(m))] = 100 * r.value
        else:
            out.loc[r.layers, (r.case, short_method_name(r.method))] = 100 * r.value
    return out


def sanity_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Sanity checks per method: similarity of the maps to the trained model's after full
    cascading randomisation (Spearman, SSIM), after label randomisation, and the flag
    (maps that barely change when the model is destroyed)."""
    rows = _rows(metrics, list="sanity")
    if rows.empty:
        return _empty()
    wide = rows.pivot_table(index="condition", columns="metric", values="value", aggfunc="last")
    names = {
        "spearman_final": "Spearman, all layers randomised",
        "ssim_final": "SSIM, all layers randomised",
        "label_spearman": "Spearman, labels randomised",
    }
    out = pd.DataFrame(
        {label: wide.get(m, pd.Series(np.nan, index=wide.index)) for m, label in names.items()}
    )
    out["Flagged"] = [
        bool(v >= 0.5) if not np.isnan(v) else False
        for v in wide.get("flagged", pd.Series(np.nan, index=wide.index))
    ]
    out.index = pd.Index([method_name(str(c)) for c in wide.index], name="Method")
    return out


def identification_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Top-1 (%) of closed-set identification per model, condition and list."""
    rows = _rows(metrics, metric="top1")
    rows = rows[~rows["list"].isin(ANALYSIS_LISTS)]
    if rows.empty:
        return _empty()
    rows = rows.sort_values(["model", "condition", "list"])
    return pd.DataFrame(
        {
            "Condition": [condition_name(c) for c in rows["condition"]],
            "List": list(rows["list"]),
            "Top-1 (%)": list(100 * rows["value"]),
        },
        index=pd.Index(list(rows["model"]), name="Model"),
    )


def training_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Per trained model: epochs, final loss and training Top-1 (%), training seconds."""
    rows = _rows(metrics, list="train")
    if rows.empty:
        return _empty()
    wide = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="last")
    wide = wide.reindex(columns=["train_epochs", "train_loss", "train_top1", "train_seconds"])
    out = pd.DataFrame(
        {
            "Epochs": wide["train_epochs"],
            "Final loss": wide["train_loss"],
            "Train Top-1 (%)": 100 * wide["train_top1"],
            "Seconds": wide["train_seconds"],
        }
    )
    out.index.name = "Model"
    return out


def tune_table(results: pd.DataFrame | None, top: int = 10, mode: str = "min") -> pd.DataFrame:
    """The ``top`` trials of the sweep by objective (``mode`` min or max), with their
    sampled configuration as columns. The objective is the metric other than epoch/error."""
    if results is None or results.empty:
        return _empty()
    objective = [m for m in dict.fromkeys(results["metric"]) if m not in ("epoch", "error")]
    if not objective:
        return _empty()
    metric = objective[0]
    trials = []
    for trial_id, group in results.groupby("trial_id", sort=True):
        obj = group.loc[group["metric"] == metric, "value"]
        epochs = group.loc[group["metric"] == "epoch", "value"]
        try:
            config = json.loads(group["config"].iloc[0])
        except (TypeError, ValueError):
            config = {}
        trials.append(
            {
                "Trial": trial_id,
                metric: float(obj.iloc[-1]) if len(obj) else np.nan,
                "Epochs": float(epochs.iloc[-1]) if len(epochs) else np.nan,
                "Status": str(group["status"].iloc[-1]),
                **{
                    k: v if isinstance(v, (int, float, str)) else json.dumps(v)
                    for k, v in config.items()
                },
            }
        )
    out = pd.DataFrame(trials)
    out = out.sort_values(metric, ascending=(mode == "min"), na_position="last").head(top)
    if metric == "eer":
        out = out.rename(columns={"eer": EER}).assign(**{EER: lambda d: 100 * d[EER]})
    return out.set_index("Trial")


def skipped_table(stages: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """What stage parts did not compute and why: a row per part marked ``skipped`` (all of it)
    and per piece a part lists in ``partly_skipped`` (a scorer, a method, a check)."""
    rows: list[tuple[str, str, str]] = []
    for part, record in sorted(stages.items()):
        if record.get("skipped"):
            rows.append((part, "all of it", str(record["skipped"])))
        partly = record.get("partly_skipped")
        if isinstance(partly, dict):
            rows += [(part, str(what), str(why)) for what, why in sorted(partly.items())]
    if not rows:
        return _empty()
    return pd.DataFrame(
        {"Left out": [r[1] for r in rows], "Why": [r[2] for r in rows]},
        index=pd.Index([r[0] for r in rows], name="Part"),
    )


def stage_table(stages: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per stage marker (``_stages/<stage>.json``) in the order the stages finished."""
    if not stages:
        return _empty()
    records = sorted(stages.items(), key=lambda kv: (str(kv[1].get("finished_at", "")), kv[0]))

    def number(record: dict[str, Any], key: str) -> float:
        value = record.get(key)
        return (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else np.nan
        )

    columns = {
        label: [number(d, key) for _, d in records]
        for label, key in (
            ("Inputs", "inputs"),
            ("Outputs", "outputs"),
            ("Quarantined", "quarantined"),
            ("Skipped", "skipped"),
            ("Seconds", "seconds"),
        )
    }
    columns["Finished at"] = [str(d.get("finished_at", "")) for _, d in records]
    return pd.DataFrame(columns, index=pd.Index([name for name, _ in records], name="Stage"))


def quarantine_summary(quarantine: pd.DataFrame | None) -> pd.DataFrame:
    """Rejected inputs counted per stage and reason (the path cut out of the reason, so one
    reason for many files is one row)."""
    if quarantine is None or quarantine.empty:
        return _empty()
    reasons = [
        str(r).replace(str(p), "<path>") if p else str(r)
        for p, r in zip(quarantine["path"], quarantine["reason"], strict=True)
    ]
    counts = (
        pd.DataFrame({"Stage": quarantine["stage"].astype(str), "Reason": reasons})
        .groupby(["Stage", "Reason"])
        .size()
        .rename("Count")
        .reset_index()
    )
    counts = counts.sort_values(["Count", "Stage", "Reason"], ascending=[False, True, True])
    return counts.set_index("Stage")


def quarantine_first(quarantine: pd.DataFrame | None, n: int = 20) -> pd.DataFrame:
    """The first ``n`` quarantine rows, sorted by stage and path."""
    if quarantine is None or quarantine.empty:
        return _empty()
    rows = quarantine.sort_values(["stage", "path"]).head(n)
    return pd.DataFrame(
        {"Path": list(rows["path"]), "Reason": list(rows["reason"])},
        index=pd.Index(list(rows["stage"]), name="Stage"),
    )


def sweep_points(results: pd.DataFrame | None) -> pd.DataFrame:
    """One row per Tune trial that reported a kept fraction: method, tau, kept_fraction, eer,
    eer_random (the last reported value of each; fractions), for the sweep plot."""
    if results is None or results.empty or "kept_fraction" not in set(results["metric"]):
        return _empty()
    rows = []
    for trial_id, group in results.groupby("trial_id", sort=True):
        last = group.groupby("metric")["value"].last()
        try:
            config = json.loads(group["config"].iloc[0])
        except (TypeError, ValueError):
            config = {}
        if "kept_fraction" not in last or "eer" not in last:
            continue
        rows.append(
            {
                "trial_id": trial_id,
                "method": str(config.get("method", "")),
                "tau": config.get("tau", np.nan),
                "kept_fraction": float(last["kept_fraction"]),
                "eer": float(last["eer"]),
                "eer_random": float(last.get("eer_random", np.nan)),
            }
        )
    return pd.DataFrame(rows) if rows else _empty()
