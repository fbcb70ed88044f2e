"""A single stage on a fresh or partial --out first runs what it reads and is not complete:
manifest, features (for the front-end of the model in use), without --model train, and for the
stages that score embeddings, embed."""

from __future__ import annotations

from pathlib import Path

import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from voxray.config import VoxrayConfig, replace
from voxray.io.run_state import mark_stage_done
from voxray.io.storage import Storage
from voxray.pipeline.context import RunContext
from voxray.pipeline.front_ends import run_front_ends
from voxray.pipeline.stages import missing_prerequisites


def _ctx(out: Path, model: str = "", **changes: object) -> RunContext:
    return RunContext(replace(VoxrayConfig(), out=str(out), model_path=model, **changes))


def _sb_checkpoint(folder: Path) -> str:
    model = ECAPA_TDNN(input_size=80, channels=[32, 32, 32, 32, 96], lin_neurons=16)
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    return str(folder / "embedding_model.ckpt")


def test_fresh_out_needs_manifest_features_and_train(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / "out")
    assert missing_prerequisites(ctx, "embed") == ["manifest", "features", "train"]
    assert missing_prerequisites(ctx, "features") == ["manifest"]
    assert missing_prerequisites(ctx, "manifest") == []
    # scoring reads embeddings/; computing maps does not
    assert missing_prerequisites(ctx, "evaluate") == ["manifest", "features", "train", "embed"]
    assert missing_prerequisites(ctx, "trial") == ["manifest", "features", "train", "embed"]
    assert missing_prerequisites(ctx, "attribute") == ["manifest", "features", "train"]


def test_given_model_needs_no_training(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / "out", _sb_checkpoint(tmp_path))
    assert missing_prerequisites(ctx, "attribute") == ["manifest", "features"]
    assert missing_prerequisites(ctx, "evaluate") == ["manifest", "features", "embed"]


def test_features_complete_only_for_the_models_front_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = Storage(str(out))
    mark_stage_done(s, "manifest", {})
    mark_stage_done(s, "features", {"kinds": ["fbank"]})
    # the Kaldi-trained model's features are there; the SpeechBrain model's are not
    assert missing_prerequisites(_ctx(out), "embed") == ["train"]
    sb = _ctx(out, _sb_checkpoint(tmp_path))
    assert [f.name for f in run_front_ends(sb)] == ["sb_fbank"]
    assert missing_prerequisites(sb, "embed") == ["features"]
    mark_stage_done(s, "features", {"kinds": ["fbank", "sb_fbank"]})
    assert missing_prerequisites(sb, "embed") == []


def test_extra_kinds_are_computed_beside_the_models(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / "out", **{"features.kinds": ("mfcc", "fbank")})
    assert [f.name for f in run_front_ends(ctx)] == ["fbank", "mfcc"]
