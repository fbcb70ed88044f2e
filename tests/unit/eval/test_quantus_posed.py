"""Every Quantus metric voxray computes states, on its class, each Quantus argument it sets and
why: the stated arguments are exactly the ones it passes, each is an argument of its Quantus
class, the built metric holds them, and none of abs, normalise, perturb_baseline or the
sample and subset counts its Quantus class takes is left to an unstated default."""

from __future__ import annotations

import inspect

import pytest

from voxray.config import XaiMetricsConfig
from voxray.eval.quantus_posed import POSED, Posed, Setting
from voxray.eval.xai_metrics import FAMILIES, build_metric

#: the arguments issue 27 asks every metric to state where its Quantus class takes them.
MUST_STATE = ("abs", "normalise", "perturb_baseline", "nr_samples", "nr_runs", "subset_size")
SETTINGS = [Setting(XaiMetricsConfig(), 20, 8, outputs, 3) for outputs in (1, 4)]


def _quantus_params(cls: type[Posed]) -> set[str]:
    base = next(b for b in cls.__mro__ if b.__module__.startswith("quantus"))
    return set(inspect.signature(base.__init__).parameters) - {"self", "kwargs"}


def test_every_metric_has_a_posed_class() -> None:
    assert set(POSED) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(POSED))
def test_a_metric_states_exactly_the_arguments_it_sets(name: str) -> None:
    cls = POSED[name]
    params = _quantus_params(cls)
    assert "softmax" in cls.ARGS and all(why.strip() for why in cls.ARGS.values())
    assert set(cls.ARGS) - {"softmax"} <= params, f"{name} states no Quantus argument"
    assert [a for a in MUST_STATE if a in params and a not in cls.ARGS] == []
    for s in SETTINGS:
        args = cls.arguments(s)
        if args is None:
            assert cls.LIMITS, f"{name} is left out without saying why"
            continue
        assert set(args) == set(cls.ARGS) - {"softmax"}


@pytest.mark.parametrize("name", sorted(POSED))
def test_the_built_metric_holds_the_stated_values(name: str) -> None:
    s = SETTINGS[1]
    args = POSED[name].arguments(s)
    metric = build_metric(name, s.cfg, s.frames, s.bins, s.outputs, s.seed, s.baseline)
    assert type(metric) is POSED[name]
    assert (metric.abs, metric.normalise) == (args["abs"], args["normalise"])
    if "perturb_baseline" in args:
        assert metric.perturb_func.keywords["perturb_baseline"] == args["perturb_baseline"]
    for key in ("nr_runs", "subset_size", "nr_samples", "features_in_step", "num_classes"):
        if key in args and hasattr(metric, key):
            assert getattr(metric, key) == args[key]


def test_metrics_without_a_decision_or_a_constant_baseline_are_left_out() -> None:
    one = SETTINGS[0]
    assert POSED["ROAD"].build(one) is None and POSED["RandomLogit"].build(one) is None
    gaussian = Setting(one.cfg, 20, 8, 4, 3, baseline="gaussian")
    assert POSED["Completeness"].build(gaussian) is None
    assert POSED["Completeness"].arguments(SETTINGS[1])["perturb_baseline"] == 1.0
    with pytest.raises(KeyError, match="unknown metric"):
        build_metric("Pointing", one.cfg, 20, 8, 4, 3)
