"""``voxray embed`` with ``embed.from_audio`` reads audio, not features/: on a fresh --out it
runs the manifest first and not the features stage; without it, both. "auto" (the default)
reads audio when no stage of the command reads features/. An embed stage made without the
segment embeddings is redone by a command whose segment scorer needs them."""

from __future__ import annotations

from pathlib import Path

from voxray.config import load_config
from voxray.io.run_state import mark_stage_done
from voxray.pipeline.context import RunContext
from voxray.pipeline.embed_plan import embeds_from_audio
from voxray.pipeline.fingerprint import Action
from voxray.pipeline.stages import decide_stage, missing_prerequisites


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


def _auto(tmp_path: Path, stages: tuple[str, ...]) -> RunContext:
    cfg = load_config(profile="smoke", overrides=[f"out={tmp_path}", f"model_path={tmp_path}/m"])
    return RunContext(cfg, stages=stages)


def test_auto_reads_audio_when_no_stage_of_the_command_reads_features(tmp_path: Path) -> None:
    assert embeds_from_audio(_auto(tmp_path, ("embed",)))
    assert missing_prerequisites(_auto(tmp_path, ("embed",)), "embed") == ["manifest"]
    # evaluate reads features/ (its analyses), so the features stage is written and read
    both = _auto(tmp_path, ("embed", "evaluate"))
    assert not embeds_from_audio(both)
    assert missing_prerequisites(both, "embed") == ["manifest", "features"]


def test_an_embed_made_without_segments_is_redone_when_a_segment_scorer_runs(
    tmp_path: Path,
) -> None:
    alone = _auto(tmp_path, ("embed",))
    decision, fp = decide_stage(alone, "embed")
    mark_stage_done(alone.out, "embed", {"segments": False, "fingerprint": fp})
    assert decide_stage(alone, "embed")[0].action == Action.SKIP
    later = _auto(tmp_path, ("evaluate",))
    decision, _ = decide_stage(later, "embed")
    assert decision.action == Action.REBUILD
    assert any("segment embeddings needed" in r for r in decision.reasons)
    # an embed made with them is kept
    mark_stage_done(alone.out, "embed", {"segments": True, "fingerprint": fp})
    assert decide_stage(later, "embed")[0].action == Action.SKIP
