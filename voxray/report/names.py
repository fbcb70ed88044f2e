"""Display names for the values of the metrics/ columns (methods, conditions, scorers, lists).

The metrics table stores machine names (``integrated_gradients``,
``masked:integrated_gradients/classification/threshold@0.1``, ``ahc-weighted``); the report
shows them the way the seed papers print them (``Integrated Gradients + mask(0.1)``,
``AHC-WeightedAvg``). Unknown names pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable, Sequence

from voxray.attribution.base import ATTRIBUTORS, Pathway, methods_with_pathway

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
}
#: lists of metrics/ rows that are not verification trial lists.
ANALYSIS_LISTS = ("train", "faithfulness", "pixel_flipping", "sanity", "gender", "multispeaker")
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
    rank = {"cosine": 0, "cosine-asnorm": 1, "mean_dot": 2, "mean_cossim": 3}
    if scorer in rank:
        return rank[scorer], ""
    if scorer.startswith("ahc-"):
        return 4, scorer_name(scorer)
    if scorer.startswith("ds-"):
        return 5, scorer_name(scorer)
    return 6, scorer


#: the pathway segment of a mask condition's name whose Classification maps cover the model's
#: training speakers only, every other utterance being masked along Traversal (MaskCondition).
SEEN_CLASSIFICATION = "seen-classification"
#: the last segment of a shuffled-map control condition's name.
SHUFFLED = "shuffled"


@dataclass(frozen=True)
class MaskedCondition:
    """A parsed ``masked:<method>/<pathway>/<rule>[:<reading>][@value][/shuffled]`` value."""

    method: str
    pathway: str
    rule: str
    value: float | None
    #: the threshold's reading (signed / magnitude), None for the other rules.
    reading: str | None = None
    #: True for the shuffled-map control.
    shuffled: bool = False

    @property
    def label(self) -> str:
        name = method_name(self.method)
        if self.rule == "threshold" and self.value is not None:
            reading = f", {self.reading}" if self.reading else ""
            name = f"{name} + mask({self.value:g}{reading})"
        elif self.rule == "moore" and self.value is not None:
            name = f"{name}, Moore augmentation (top {100 * self.value:g}%)"
        elif self.rule != "product":
            name = f"{name}, {self.rule}"
        if self.pathway not in (SEEN_CLASSIFICATION, Pathway.CLASSIFICATION):
            name = f"{name} ({self.pathway})"
        return f"{name}, shuffled maps" if self.shuffled else name


def parse_masked(condition: str) -> MaskedCondition | None:
    """The parts of a masked condition value, or None for any other condition."""
    if not condition.startswith("masked:"):
        return None
    parts = condition[len("masked:") :].split("/")
    shuffled = len(parts) == 4 and parts[3] == SHUFFLED
    if len(parts) != 3 + shuffled:
        return None
    rule, _, raw = parts[2].partition("@")
    rule, _, reading = rule.partition(":")
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return MaskedCondition(parts[0], parts[1], rule, value, reading or None, shuffled)


def own_maps_condition(condition: str) -> str:
    """The condition a shuffled-map control controls (the same name without ``/shuffled``)."""
    return condition.removesuffix(f"/{SHUFFLED}")


def condition_name(condition: str) -> str:
    if condition == "none":
        return "None (clean)"
    parsed = parse_masked(condition)
    return parsed.label if parsed else condition


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
