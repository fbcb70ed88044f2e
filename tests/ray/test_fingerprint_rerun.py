"""The real attribute stage under the fingerprint driver (issue 29): a rerun with the same
settings skips it, one with attribution.ig_steps changed rebuilds it, replacing its rows
instead of keeping the stale ones (its resume skips committed rows) or adding duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxray.config import load_config
from voxray.io.run_state import stage_info
from voxray.pipeline.context import RunContext
from voxray.pipeline.stages import run_stages
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray
SMALL = [
    "features.kinds=[]",  # the model's own front-end only: the one make_outputs wrote
    "mask.conditions=[]",  # no maps for masks beyond the methods named here
    "attribution.methods=[saliency]",
    "attribution.pathways=[traversal]",
    "attribution.max_utterances=2",
]


def _ctx(out: Path, *overrides: str) -> RunContext:
    return RunContext(load_config(profile="smoke", overrides=[f"out={out}", *SMALL, *overrides]))


def test_attribute_is_skipped_when_fresh_and_rebuilt_when_its_settings_change(
    ray_local, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    storage = make_outputs(str(out))  # manifest, features, a model: markers of no fingerprint
    first = run_stages(_ctx(out), ("attribute",), rerun=True)
    assert [r.stage for r in first] == ["attribute"]
    rows = first[0].outputs
    assert rows >= 2 and storage.read_table("attributions").num_rows == rows
    files = sorted(storage.parquet_files("attributions"))

    assert run_stages(_ctx(out), ("attribute",)) == []  # as `voxray run` would: fresh, skipped
    assert sorted(storage.parquet_files("attributions")) == files

    with caplog.at_level("INFO", logger="voxray"):
        again = run_stages(_ctx(out, "attribution.ig_steps=3"), ("attribute",))
    assert [(r.stage, r.outputs) for r in again] == [("attribute", rows)]
    assert "stage attribute: redone, its outputs are stale: attribution.ig_steps" in caplog.text
    assert storage.read_table("attributions").num_rows == rows  # replaced, not added to
    marker = stage_info(storage, "attribute")["fingerprint"]
    assert marker["settings"]["attribution.ig_steps"] == 3
