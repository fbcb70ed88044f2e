"""A model evaluated on a corpus whose speakers it never saw (issue #19): ``voxray evaluate
--model`` and ``voxray run --model`` complete, identification and the multi-speaker test are
skipped with a reason the report shows, and verification, clustering scorers, faithfulness on
the verification score and the sanity checks still run (on the embedder's Traversal)."""

from __future__ import annotations

import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.eer import mismatched_eers
from voxray import schema
from voxray.cli import main
from voxray.config import ModelConfig
from voxray.io.run_state import mark_stage_done, stage_info
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import load_model, save_model
from voxray.testing.synthetic_outputs import make_outputs
from voxray.train.data import centre_start, loop_crop
from voxray.train.local import fit_classifier

pytestmark = pytest.mark.ray
BINS = 16
#: small everything: two Captum methods and a CAM (which cannot explain unknown speakers).
OVERRIDES = [
    "attribution.methods=[saliency,layer_cam]",
    "attribution.max_utterances=2",
    "eval.faithfulness.methods=[saliency,layer_cam]",
    "eval.faithfulness.steps=2",
    "eval.sanity.methods=[saliency,layer_cam]",
    "eval.multispeaker.methods=[layer_cam]",
    "eval.gender.enabled=false",
    "mask.conditions=[]",
    "retrain.enabled=false",
    "tune.enabled=false",
    "trial.enabled=false",
    "report.tsne=false",
    "features.kinds=[fbank]",  # the front-end corpus B already has (no audio to compute more)
    "eval.xai.enabled=false",
]


def _trained_model(folder: Path) -> str:
    """A model trained (a few epochs) on corpus A's training speakers id10001-id10002."""
    s = make_outputs(str(folder), speakers=4, utts=4, frames=60, bins=BINS, model=False)
    manifest = s.read_table("manifest.parquet").to_pandas()
    feats = s.read_table("features/kind=fbank")
    mats = dict(zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True))
    train = manifest[manifest["split"] == "train"]
    speakers = sorted(train["speaker_id"].unique())
    x = np.stack([loop_crop(mats[u], centre_start(len(mats[u]), 50), 50) for u in train.utt_id])
    y = torch.tensor([speakers.index(sp) for sp in train["speaker_id"]])
    cfg = ModelConfig(channels=8, embedding_dim=16)
    torch.manual_seed(0)
    model = build_classifier(cfg, BINS, len(speakers))
    fit_classifier(model, torch.from_numpy(x), y, epochs=3, batch_size=4)
    save_model(s, "models/ecapa", model, cfg, speakers, BINS)
    return str(folder / "models" / "ecapa")


def _other_corpus(folder: Path, model: str) -> Path:
    """Corpus B (speakers id20001-id20006) with its manifest and features already computed."""
    s = make_outputs(
        str(folder), speakers=6, utts=3, frames=60, bins=BINS, first_speaker=20001, model=False
    )
    mark_stage_done(s, "manifest", {})
    mark_stage_done(s, "features", {"kinds": [load_model(model).front_end.name]})
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("disjoint")
    model = _trained_model(root / "a")
    return model, _other_corpus(root / "b", model)


def _cli(stage: str, out: Path, model: str) -> None:
    args = [stage, "--profile", "smoke", "--data-root", str(out), "--out", str(out)]
    assert main([*args, "--model", model, *OVERRIDES]) == 0, stage


def _check_outputs(out: Path) -> None:
    s = Storage(str(out))
    info = {p: stage_info(s, f"evaluate.{p}") for p in ("identification", "multispeaker")}
    for part in info.values():
        assert "disjoint from the model's" in part["skipped"]
    faith = stage_info(s, "evaluate.faithfulness")
    assert set(faith["partly_skipped"]) == {"top1", "layer_cam"}
    assert faith["methods"] == ["saliency"]
    sanity = stage_info(s, "evaluate.sanity")
    assert set(sanity["partly_skipped"]) == {"layer_cam", "label_randomisation"}

    metrics = s.read_table("metrics").to_pandas()
    eer = metrics[(metrics.metric == "eer") & (metrics.condition == "none")]
    assert set(eer["scorer"]) >= {"cosine", "mean_cossim"}  # verification, clustering scorers
    # each EER is the one scikit-learn's ROC gives on the scores/ rows behind it
    checked, wrong = mismatched_eers(s.read_table("scores").to_pandas(), eer)
    assert checked >= 2 and not wrong, (checked, wrong)
    faithfulness = metrics[metrics["list"] == "faithfulness"]
    assert set(faithfulness["scorer"]) == {"verification"}
    assert set(faithfulness["condition"]) == {"random", "time_aligned", "saliency/traversal"}
    assert np.isfinite(faithfulness["value"]).all()
    sanity_rows = metrics[metrics["list"] == "sanity"]
    assert set(sanity_rows["condition"]) == {"saliency"}
    assert not (metrics["metric"] == "top1").any()

    html = unescape((out / "report" / "index.html").read_text())
    start = html.index('<section id="identification"')
    identification = html[start : html.index("</section>", start)]
    assert "Skipped in this run: no utterance of the train split" in identification
    assert "disjoint from the model's" in identification
    assert "Left out of this run, and why" in html  # the table of every skip, in the run section


def test_evaluate_a_model_on_a_corpus_of_other_speakers(ray_local, corpora) -> None:
    model, corpus = corpora
    out = corpus.parent / "evaluate"
    shutil.copytree(corpus, out)
    for stage in ("embed", "evaluate", "report"):
        _cli(stage, out, model)
    _check_outputs(out)


def test_run_a_model_on_a_corpus_of_other_speakers(ray_local, corpora) -> None:
    model, corpus = corpora
    out = corpus.parent / "run"
    shutil.copytree(corpus, out)
    _cli("run", out, model)
    _check_outputs(out)
    attributions = Storage(str(out)).read_table("attributions", columns=["pathway"])
    assert set(attributions.column("pathway").to_pylist()) >= {"traversal"}
