"""The retrain stage's ``continue`` variant without Ray: ``run_retrain`` hands the base model's
weights to training, the training loop's first-step classifier holds exactly them (scratch
retrainings start elsewhere), and the models are named so the report names the variant."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
import torch

from voxray.config import load_config
from voxray.config.retrain_names import retrained_name, retraining_of
from voxray.models import build_classifier
from voxray.pipeline import retrain_stage
from voxray.report.sections.reliability import reliability_table, seeds_note
from voxray.schema import MetricRow, metrics_table
from voxray.train.loop import _initial_classifier
from voxray.train.trainer import _loop_config

BINS, SPEAKERS = 24, 3


class _Out:
    """The outputs folder as run_retrain reads it: one test utterance, no model yet."""

    def read_table(self, *_: Any, **__: Any) -> pa.Table:
        return pa.table({"utt_id": ["test-1"]})

    def exists(self, _: str) -> bool:
        return False


@pytest.fixture
def retrained(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """run_retrain over 2 seeds x both variants of one condition and its shuffled-map control:
    the stage's record and, per model, the weights its training loop starts from."""
    cfg = load_config(
        overrides=[
            "model.arch=resnet34",
            "model.channels=4",
            "model.embedding_dim=8",
            "retrain.seeds=2",
            "retrain.variants=[scratch,continue]",
        ]
    )
    cfg = replace(cfg, mask=replace(cfg.mask, conditions=cfg.mask.conditions[:1]))
    torch.manual_seed(7)
    base = build_classifier(cfg.model, BINS, SPEAKERS)
    starts: dict[str, dict[str, torch.Tensor]] = {}

    def train_on(ctx, name, source, where, front_end, epochs, seed, init_state, stage) -> None:
        assert stage == "retrain"  # its fault hook's name
        train = replace(ctx.cfg.train, seed=seed)
        config = _loop_config(train, ctx.cfg.model, BINS, SPEAKERS, 8, None, init_state)
        starts[name] = _initial_classifier(config, seed, rank=0).state_dict()

    loaded = SimpleNamespace(front_end=SimpleNamespace(name="fbank"), classifier=base)
    monkeypatch.setattr(retrain_stage, "load_model", lambda *_: loaded)
    monkeypatch.setattr(
        retrain_stage, "base_model", lambda _: SimpleNamespace(name="base", path="base")
    )
    monkeypatch.setattr(retrain_stage, "trained_model", lambda _, name: name)
    embedded: list[tuple[str, str]] = []
    monkeypatch.setattr(
        retrain_stage,
        "embed_jobs",
        lambda ctx, jobs, *_: embedded.extend((str(j.model), j.condition) for j in jobs),
    )
    monkeypatch.setattr(retrain_stage, "train_on", train_on)
    result = retrain_stage.run_retrain(SimpleNamespace(cfg=cfg, out=_Out()))
    conds = cfg.mask.conditions
    base_state = base.state_dict()
    return {
        "info": result.info,
        "starts": starts,
        "base": base_state,
        "conds": conds,
        "embedded": embedded,
    }


def test_continue_starts_from_the_base_weights(retrained: dict[str, Any]) -> None:
    base, starts = retrained["base"], retrained["starts"]
    names = {
        (v, k, c.name): retrained_name("base", c, v, k)
        for c in retrained["conds"]
        for v in ("scratch", "continue")
        for k in (0, 1)
    }
    assert len(names) == 8 and set(starts) == set(names.values())
    assert set(starts) == set(retrained["info"]["models"])
    for (variant, k, cond), name in names.items():
        masked = next(c.parts.masked for c in retrained["conds"] if c.name == cond)
        assert {(name, masked), (name, "none")} <= set(retrained["embedded"])
        assert retraining_of(name) == (variant, k)
        same = [torch.equal(starts[name][key], value) for key, value in base.items()]
        if variant == "continue":
            assert all(same), name
        else:  # random weights: every conv and linear differs from the base's
            assert not all(same), name
            assert not torch.equal(starts[name]["embedder.fc.weight"], base["embedder.fc.weight"])


def test_the_report_names_the_variant(retrained: dict[str, Any]) -> None:
    info = retrained["info"]
    rows = [MetricRow("base", "none", "l", "cosine", "eer", 0.05)]
    for cond in retrained["conds"]:
        masked = cond.parts.masked
        rows += [MetricRow("base", masked, "l", "cosine", "eer", 0.3)]
        for variant in ("scratch", "continue"):
            for k in (0, 1):
                model = retrained_name("base", cond, variant, k)
                assert model in info["models"]
                rows += [MetricRow(model, masked, "l", "cosine", "eer", 0.1 + k / 100)]
    table = reliability_table(metrics_table(rows).to_pandas(), "base", "l")
    labels = [label for label in table.index if label != "None (clean)"]
    assert [label.rsplit(" [", 1)[1] for label in labels] == ["scratch]", "continue]"]
    assert set(table[("Seeds", "n")].iloc[1:]) == {"2"}
    assert seeds_note({"retrain": info}).endswith("variants: scratch, continue.")
