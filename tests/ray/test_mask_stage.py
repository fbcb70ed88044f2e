"""The mask stage on a small output folder: a Classification map never masks an utterance of a
speaker the model was not trained on (Traversal does), and the shuffled control masks every
utterance with another speaker's map of the same pathway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from voxray import schema
from voxray.config import MaskCondition, load_config, replace
from voxray.io.sink import write_partitioned
from voxray.mask import attribution_x_input, shuffled_condition
from voxray.pipeline.context import RunContext
from voxray.pipeline.mask_stage import run_mask
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray
METHOD = "integrated_gradients"
PRODUCT = MaskCondition(METHOD, "classification", "product")
CONTROL = MaskCondition(METHOD, "classification", "product", maps="shuffled")


def _maps(feats: pa.Table, rng: np.random.Generator) -> dict[tuple[str, str], np.ndarray]:
    """(utt_id, pathway) -> a random map for every utterance along both pathways."""
    out = {}
    for u, x in zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True):
        for pathway in ("traversal", "classification"):
            out[(u, pathway)] = rng.standard_normal(x.shape).astype(np.float32)
    return out


def _write_attributions(s, maps: dict[tuple[str, str], np.ndarray]) -> None:
    keys = sorted(maps)
    n = len(keys)
    t = pa.table(
        {
            "utt_id": [u for u, _ in keys],
            "model": ["ecapa"] * n,
            "method": [METHOD] * n,
            "pathway": [p for _, p in keys],
            "params": ["{}"] * n,
            "target": pa.array([-1] * n, pa.int32()),
            "num_frames": pa.array([maps[k].shape[0] for k in keys], pa.int32()),
            "num_bins": pa.array([maps[k].shape[1] for k in keys], pa.int32()),
            "values": schema.floats_column([maps[k] for k in keys]),
            "freq_profile": schema.floats_column([maps[k].mean(axis=0) for k in keys]),
            "completeness_error": pa.array([None] * n, pa.float64()),
        }
    )
    write_partitioned(
        s, "attributions", t, schema.ATTRIBUTIONS, ("utt_id", "method", "pathway"), "method"
    )


def test_unseen_speakers_are_never_masked_with_a_classification_map(
    ray_local, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    s = make_outputs(str(out), speakers=6, utts=3, frames=30, bins=8)
    feats = s.read_table("features/kind=fbank")
    maps = _maps(feats, np.random.default_rng(0))
    _write_attributions(s, maps)
    cfg = load_config(profile="smoke", overrides=[f"out={out}"])
    cfg = replace(cfg, **{"mask.conditions": (PRODUCT, CONTROL)})
    result = run_mask(RunContext(cfg))
    assert result.outputs == 2 * feats.num_rows

    manifest = s.read_table("manifest.parquet").to_pandas().set_index("utt_id")
    x_of = dict(zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True))
    masked = s.read_table("masked")
    rows = masked.to_pandas()
    rows["values"] = schema.matrices(masked)
    own = rows[rows.condition == PRODUCT.name].set_index("utt_id")
    ctl = rows[rows.condition == CONTROL.name].set_index("utt_id")
    for u, x in x_of.items():
        seen = manifest.loc[u, "split"] == "train"
        pathway = "classification" if seen else "traversal"
        assert own.loc[u, "pathway"] == ctl.loc[u, "pathway"] == pathway
        expected = attribution_x_input(x, maps[(u, pathway)])
        np.testing.assert_allclose(own.loc[u, "values"], expected, rtol=1e-5, atol=1e-6)
        if not seen:  # the leak: the Classification map of an unseen speaker's utterance
            leak = attribution_x_input(x, maps[(u, "classification")])
            assert not np.allclose(own.loc[u, "values"], leak, atol=1e-3)
        # the control: exactly one donor, of another speaker of the same group, same pathway
        matches = [
            d
            for d in x_of
            if maps[(d, pathway)].shape[1] == x.shape[1]
            and np.allclose(
                ctl.loc[u, "values"],
                shuffled_condition(x, maps[(u, pathway)], maps[(d, pathway)], CONTROL),
                atol=1e-5,
            )
        ]
        assert len(matches) == 1, (u, matches)
        donor = matches[0]
        assert manifest.loc[donor, "speaker_id"] != manifest.loc[u, "speaker_id"]
        assert (manifest.loc[donor, "split"] == "train") == seen

    again = run_mask(RunContext(cfg))  # a rerun finds every row committed
    assert again.outputs == result.outputs and s.read_table("masked").num_rows == len(rows)

    # the class leak of the own-map condition, on the training utterances: masked and raw
    leak = s.read_table("metrics/mask-leak.parquet").to_pandas()
    chance = leak[leak.metric == "class_chance"]
    train_speakers = manifest[manifest.split == "train"].speaker_id.nunique()
    assert chance.value.tolist() == [1 / train_speakers] and chance.n.tolist() == [train_speakers]
    leak = leak[leak.metric == "class_recovery"]
    assert set(leak.condition) == {PRODUCT.parts.masked, "none"}
    assert (leak.scorer == PRODUCT.name).all()
    train = int((manifest.split == "train").sum())
    assert (leak.n == train).all()
    assert ((leak.ci_low <= leak.value) & (leak.value <= leak.ci_high)).all()
    assert result.info["leak"] == {PRODUCT.name: float(leak.set_index("condition").value.iloc[0])}
