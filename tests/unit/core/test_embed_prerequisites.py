"""``voxray embed`` with ``embed.from_audio`` reads audio, not features/: on a fresh --out it
runs the manifest first and not the features stage; without it, both."""

from __future__ import annotations

from pathlib import Path

from voxray.config import load_config
from voxray.pipeline.context import RunContext
from voxray.pipeline.stages import missing_prerequisites


def _ctx(tmp_path: Path, from_audio: bool) -> RunContext:
    cfg = load_config(
        profile="smoke",
        overrides=[
            f"out={tmp_path}",
            f"model_path={tmp_path / 'm.ckpt'}",
            f"embed.from_audio={'true' if from_audio else 'false'}",
        ],
    )
    return RunContext(cfg)


def test_from_audio_skips_the_features_stage(tmp_path: Path) -> None:
    assert missing_prerequisites(_ctx(tmp_path, True), "embed") == ["manifest"]
    assert missing_prerequisites(_ctx(tmp_path, False), "embed") == ["manifest", "features"]
