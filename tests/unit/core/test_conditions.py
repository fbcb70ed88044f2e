"""The mask condition's name: what the mask stage writes is what the report parses back."""

from __future__ import annotations

import pytest

from voxray.config import MaskCondition
from voxray.config.conditions import ConditionName, own_maps_condition, parse_masked


@pytest.mark.parametrize(
    ("cond", "name"),
    [
        (MaskCondition("saliency", "classification"), "saliency/seen-classification/product"),
        (
            MaskCondition("saliency", "traversal", "threshold", 0.25, reading="magnitude"),
            "saliency/traversal/threshold:magnitude@0.25",
        ),
        (
            MaskCondition("lrp_epsilon", "lrp", "moore", top_fraction=0.005, maps="shuffled"),
            "lrp_epsilon/lrp/moore@0.005/shuffled",
        ),
    ],
)
def test_a_condition_name_round_trips(cond: MaskCondition, name: str) -> None:
    assert cond.name == name
    assert cond.parts.masked == f"masked:{name}"
    assert parse_masked(cond.parts.masked) == cond.parts


def test_the_name_carries_only_the_rule_s_own_value() -> None:
    # product ignores threshold and reading; moore carries the top fraction, not the threshold
    assert MaskCondition(threshold=0.3, reading="magnitude").parts.value is None
    moore = MaskCondition(rule="moore", threshold=0.3, top_fraction=0.01).parts
    assert (moore.value, moore.reading) == (0.01, None)


def test_other_values_do_not_parse() -> None:
    assert parse_masked("none") is None
    assert parse_masked("ig/traversal/product") is None  # no masked: prefix
    assert parse_masked("masked:ig/traversal/threshold@x") is None
    assert parse_masked("masked:ig/traversal/product/own") is None
    parsed = parse_masked("masked:ig/traversal/product")
    assert parsed == ConditionName("ig", "traversal", "product")


def test_a_control_names_the_condition_it_controls() -> None:
    control = MaskCondition("ig", "traversal", maps="shuffled").parts.masked
    assert own_maps_condition(control) == MaskCondition("ig", "traversal").parts.masked
