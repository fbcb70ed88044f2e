"""Which map masks an utterance (Classification only for training speakers) and the shuffled
control's pairing (a bijection, never the own speaker, reproducible)."""

from __future__ import annotations

from collections import Counter

import pytest

from voxray.config import MaskCondition, load_config
from voxray.mask.pathway import donors, map_pathway, mask_jobs, seen_utterances
from voxray.pipeline.attribute_stage import plan


def test_classification_only_for_seen_speakers() -> None:
    cond = MaskCondition("integrated_gradients", "classification")
    assert map_pathway(cond, seen=True) == "classification"
    assert map_pathway(cond, seen=False) == "traversal"
    trav = MaskCondition("saliency", "traversal")
    assert map_pathway(trav, seen=True) == map_pathway(trav, seen=False) == "traversal"


@pytest.mark.parametrize("method", ["layer_cam", "lrp_epsilon"])
def test_class_only_methods_cannot_mask_unseen_speakers(method: str) -> None:
    cond = MaskCondition(method, "classification", "threshold")
    assert map_pathway(cond, seen=True) in ("cam", "lrp")
    with pytest.raises(ValueError, match="not trained on"):
        map_pathway(cond, seen=False)


def test_seen_utterances_are_those_of_the_model_classes() -> None:
    speaker_of = {"a/v/1": "a", "a/v/2": "a", "b/v/1": "b", "c/v/1": "c"}
    assert seen_utterances(speaker_of, ["a", "c"]) == {"a/v/1", "a/v/2", "c/v/1"}
    assert seen_utterances(speaker_of, []) == frozenset()


def test_attribute_plan_asks_traversal_maps_for_unseen_utterances() -> None:
    """The seen-classification variant: Classification maps only for training speakers."""
    variant = (
        "mask.conditions=[{method: integrated_gradients, pathway: classification, rule: product},"
        " {method: gradient_shap, pathway: classification, rule: product}]"
    )
    cfg = load_config(overrides=["attribution.methods=[]", variant])
    split = {"a/v/1": "train", "b/v/1": "train", "t/v/1": "test", "u/v/1": "test"}
    speaker_of = {u: u.split("/")[0] for u in split}
    wanted = plan(cfg, split, speaker_of, frozenset({"a/v/1", "b/v/1"}))
    for u in ("t/v/1", "u/v/1"):
        assert {j.pathway for j in wanted[u]} == {"traversal"}
    for u in ("a/v/1", "b/v/1"):
        assert {j.pathway for j in wanted[u]} == {"classification"}
    assert mask_jobs(cfg.mask.conditions, False) == [
        ("integrated_gradients", "traversal"),
        ("gradient_shap", "traversal"),
    ]
    # the default design: Traversal maps for every utterance, seen or not
    default = plan(
        load_config(overrides=["attribution.methods=[]"]), split, speaker_of, frozenset(split)
    )
    assert {j.pathway for js in default.values() for j in js} == {"traversal"}


def test_donors_are_a_bijection_across_speakers_and_reproducible() -> None:
    speaker_of = {f"s{k % 5}/v/{k}": f"s{k % 5}" for k in range(23)}
    speaker_of |= {f"big/v/{k}": "big" for k in range(9)}  # one speaker with many utterances
    pairs = donors(list(speaker_of), speaker_of, seed=3)
    assert sorted(pairs) == sorted(speaker_of)
    assert sorted(pairs.values()) == sorted(speaker_of)  # every map lent exactly once
    assert all(speaker_of[u] != speaker_of[d] for u, d in pairs.items())
    assert donors(reversed(list(speaker_of)), speaker_of, seed=3) == pairs
    other = donors(list(speaker_of), speaker_of, seed=4)
    assert other != pairs
    assert max(Counter(speaker_of[d] for d in pairs.values()).values()) == 9


def test_donors_need_two_speakers() -> None:
    with pytest.raises(ValueError, match="one speaker"):
        donors(["a/v/1", "a/v/2"], {"a/v/1": "a", "a/v/2": "a"}, seed=0)
    assert donors([], {}, seed=0) == {}


def test_the_explained_subset_spreads_over_speakers() -> None:
    """attribution.max_utterances of a corpus sorted by speaker: one utterance per speaker in
    turn, so a figure over them stands for every speaker, not the first one's utterances; the
    perturbation methods' smaller subset is its prefix."""
    speaker_of = {f"{s}/v/{k}": s for s in ("a", "b", "c") for k in range(5)}
    split = dict.fromkeys(speaker_of, "test")
    cfg = load_config(
        overrides=[
            "attribution.methods=[saliency,occlusion]",
            "attribution.pathways=[traversal]",
            "attribution.max_utterances=5",
            "attribution.perturbation_max_utterances=2",
            "mask.conditions=[]",
        ]
    )
    wanted = plan(cfg, split, speaker_of)
    explained = sorted(u for u, js in wanted.items() if any(j.method == "saliency" for j in js))
    assert explained == ["a/v/0", "a/v/1", "b/v/0", "b/v/1", "c/v/0"]
    perturbed = sorted(u for u, js in wanted.items() if any(j.method == "occlusion" for j in js))
    assert perturbed == ["a/v/0", "b/v/0"]


def test_the_explained_subset_keeps_to_max_seconds() -> None:
    """attribution.max_seconds: the explained subset (and its perturbation prefix) holds only
    utterances that short, still spread over the speakers; the mask conditions' maps are made
    for every utterance, long ones too; 0 bounds nothing."""
    speaker_of = {f"{s}/v/{k}": s for s in ("a", "b") for k in range(3)}
    split = dict.fromkeys(speaker_of, "test")
    seconds_of = {u: 30.0 if u.endswith("/0") else 3.0 for u in speaker_of}

    def wanted(seconds: int, method: str) -> list[str]:
        cfg = load_config(
            overrides=[
                "attribution.methods=[saliency,occlusion]",
                "attribution.pathways=[traversal]",
                "attribution.max_utterances=3",
                "attribution.perturbation_max_utterances=2",
                f"attribution.max_seconds={seconds}",
                "mask.conditions=[{method: saliency, pathway: traversal, rule: product}]",
            ]
        )
        jobs = plan(cfg, split, speaker_of, seconds_of=seconds_of)
        return sorted(u for u, js in jobs.items() if any(j.method == method for j in js))

    assert wanted(6, "saliency") == sorted(speaker_of)  # the mask condition's: every utterance
    assert wanted(6, "occlusion") == ["a/v/1", "b/v/1"]  # the 30 s ones out, both speakers in
    assert wanted(0, "occlusion") == ["a/v/0", "b/v/0"]
    with pytest.raises(ValueError, match="max_seconds"):
        load_config(overrides=["attribution.max_seconds=-1"])
