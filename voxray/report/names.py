"""Display names for the values of the metrics/ columns (methods, conditions, scorers, lists).

The metrics table stores machine names (``integrated_gradients``,
``masked:integrated_gradients/classification/threshold@0.1``, ``ahc-weighted``); the report
shows them the way the seed papers print them (``Integrated Gradients + mask(0.1)``,
``AHC-WeightedAvg``). Unknown names pass through unchanged.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Iterable, Sequence

from voxray.attribution.base import ATTRIBUTORS, Pathway, methods_with_pathway
from voxray.config.conditions import ConditionName, parse_masked

#: the attribution methods' titles are on their classes; these conditions are not methods.
METHOD_NAMES = {n: cls.title for n, cls in ATTRIBUTORS.items()} | {
    "random": "Random",
    "time_aligned": "Time-aligned",
    "original": "Original",
}
CAM_METHODS = methods_with_pathway(Pathway.CAM)
#: conditions of the faithfulness / flipping tables that are references, not attribution methods.
REFERENCES = ("random", "time_aligned")
LINKAGE_NAMES = {"weighted": "WeightedAvg"}
SCORER_NAMES = {
    "cosine": "Cosine",
    "cosine-asnorm": "Cosine + AS-norm",
    "mean_dot": "Mean-DotProduct",
    "mean_cossim": "Mean-CosSim",
    "single_segment": "Single random segment",
}
#: lists of metrics/ rows that are not verification trial lists.
ANALYSIS_LISTS = (
    "train",
    "faithfulness",
    "pixel_flipping",
    "sanity",
    "gender",
    "multispeaker",
    # the 003 sweeps (voxray.pipeline.paper_sweeps): not a trial list's verification results
    "lstm_width",
    "segment_length",
)
#: the list of the multi-speaker test's rows (their ``case`` column names the concatenation).
MULTISPEAKER_LIST = "multispeaker"


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def short_method_name(method: str) -> str:
    """Li et al. 2022's column headings for the CAMs (Table 2), where a table has a column per
    method."""
    cls = ATTRIBUTORS.get(method)
    return cls.heading() if cls is not None else method_name(method)


def method_pathway_name(label: str) -> str:
    """``layer_cam/cam`` -> ``Layer-CAM``; ``saliency/traversal`` -> ``Saliency (traversal)``."""
    method, _, pathway = label.partition("/")
    name = method_name(method)
    cls = ATTRIBUTORS.get(method)
    if not pathway or (cls is not None and cls.pathways == (pathway,)):
        return name  # the method's only pathway says nothing
    return f"{name} ({pathway})"


def scorer_name(scorer: str) -> str:
    if scorer in SCORER_NAMES:
        return SCORER_NAMES[scorer]
    prefix, _, linkage = scorer.partition("-")
    if prefix in ("ahc", "ds") and linkage:
        return f"{prefix.upper()}-{LINKAGE_NAMES.get(linkage, linkage.capitalize())}"
    return scorer


def scorer_order(scorer: str) -> tuple[int, str]:
    """Sort key: whole-utterance cosine first, then the means, AHC and dominant sets (Lehmann &
    Stadelmann 2020's order)."""
    rank = {"cosine": 0, "cosine-asnorm": 1, "single_segment": 2, "mean_dot": 3, "mean_cossim": 4}
    if scorer in rank:
        return rank[scorer], ""
    if scorer.startswith("ahc-"):
        return 5, scorer_name(scorer)
    if scorer.startswith("ds-"):
        return 6, scorer_name(scorer)
    return 7, scorer


def masked_label(parsed: ConditionName) -> str:
    """``Integrated Gradients + mask(0.1, signed)``, ``..., Moore augmentation (top 0.5%)``."""
    name = method_name(parsed.method)
    if parsed.rule == "threshold" and parsed.value is not None:
        reading = f", {parsed.reading}" if parsed.reading else ""
        name = f"{name} + mask({parsed.value:g}{reading})"
    elif parsed.rule == "moore" and parsed.value is not None:
        name = f"{name}, Moore augmentation (top {100 * parsed.value:g}%)"
    elif parsed.rule != "product":
        name = f"{name}, {parsed.rule}"
    if parsed.pathway != Pathway.TRAVERSAL:  # Table 2's default pathway goes unnamed
        name = f"{name} ({parsed.pathway})"
    return f"{name}, shuffled maps" if parsed.shuffled else name


def condition_name(condition: str) -> str:
    if condition == "none":
        return "None (clean)"
    parsed = parse_masked(condition)
    return masked_label(parsed) if parsed else condition


def fraction_label(fraction: float) -> str:
    """0.005 -> '0.5%'."""
    return f"{100 * fraction:g}%"


def order_lists(names: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    """Trial-list names in the configured order (``veri_test2.txt`` matches ``veri_test2``),
    the others after them, sorted."""
    names = sorted(set(names))
    keys = [p for item in preferred for p in (item, PurePosixPath(item).stem)]

    def rank(name: str) -> tuple[int, str]:
        for i, key in enumerate(keys):
            if name == key or PurePosixPath(name).stem == key:
                return i // 2, name
        return len(keys), name

    return sorted(names, key=rank)
