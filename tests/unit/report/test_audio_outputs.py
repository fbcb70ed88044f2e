"""The readers of audio/: the report embeds players for the shown heat maps' audio exactly when
the files exist (each file's bytes as a data URI), and ``voxray check`` holds the files to the
output contract."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import soundfile as sf

from voxray import schema
from voxray.check import check
from voxray.config import VoxrayConfig, replace
from voxray.features.kaldi import kaldi_front_end
from voxray.io.storage import Storage
from voxray.pipeline.explanation_audio import encode_flac
from voxray.report.html import Section, render_section
from voxray.report.load import load_outputs, shown_maps
from voxray.report.sections import SECTIONS, ReportContext
from voxray.testing.synthetic_report import write_synthetic_outputs

RATE = 16000
PLAYER = re.compile(r'<audio controls preload="none" src="data:audio/flac;base64,([^"]+)">')


def _tone(hz: float, n: int = RATE // 4) -> bytes:
    return encode_flac(0.2 * np.sin(2 * np.pi * hz * np.arange(n) / RATE), RATE)


def _outputs(tmp_path: Path) -> tuple[Storage, VoxrayConfig]:
    cfg = replace(
        VoxrayConfig(),
        out=str(tmp_path),
        **{"report.tsne": False, "report.heatmap_utterances": 1},
    )
    s = Storage(str(tmp_path))
    write_synthetic_outputs(s, cfg)
    return s, cfg


def _plant_audio(s: Storage, model: str) -> tuple[str, dict[str, bytes]]:
    """Distinct FLAC files for the one shown utterance's original and each shown map's parts."""
    keys = s.read_pandas(
        schema.ATTRIBUTIONS_PATH,
        columns=["utt_id", "method", "pathway", "num_frames"],
        filter=pc.field("model") == model,
    )
    keys["method"] = keys["method"].astype(str)
    ((utt, by_method),) = shown_maps(keys[keys.num_frames > 0], 1).items()
    planted = {schema.audio_file(model, utt): _tone(100.0)}
    for k, (method, pathway) in enumerate(sorted(by_method.items())):
        for j, part in enumerate(schema.AUDIO_PARTS):
            planted[schema.audio_file(model, utt, method, pathway, part)] = _tone(
                200.0 + 20 * k + j
            )
    for rel, data in planted.items():
        s.write_bytes(rel, data)
    return utt, planted


def _heatmap_section(s: Storage, cfg: VoxrayConfig) -> str:
    """The heat-map section as the report renders it (the other sections cost a minute here)."""
    front_end = kaldi_front_end(cfg.model.feature_kind, cfg.features)
    loaded = load_outputs(s, cfg.train.name, front_end.name, 100, cfg.report.heatmap_utterances)
    spec = SECTIONS["heatmaps"]
    section = Section(spec.key, spec.title, spec.intro.format(cfg=cfg))
    spec.fill(ReportContext(loaded, cfg, cfg.train.name, front_end), section)
    return render_section(section)


def test_the_report_embeds_players_when_the_audio_files_exist(tmp_path: Path, html_tables) -> None:
    s, cfg = _outputs(tmp_path)
    without = _heatmap_section(s, cfg)
    assert "<img" in without and "<audio" not in without  # no audio/: heat maps, no players

    utt, planted = _plant_audio(s, cfg.train.name)
    html = _heatmap_section(s, cfg)
    embedded = [base64.b64decode(b) for b in PLAYER.findall(html)]
    assert sorted(embedded) == sorted(planted.values())
    (players,) = [
        t for t in html_tables(html).tables["heatmaps"] if t[0][1:] == ["kept", "removed"]
    ]
    assert players[1][0] == "original (all kept)"
    assert len(players) == 1 + 1 + (len(planted) - 1) // 2  # header, original, one row per map
    assert f"listen: {utt}" in html


def test_check_holds_audio_files_to_the_contract(tmp_path: Path) -> None:
    s, cfg = _outputs(tmp_path)
    model = cfg.train.name
    _, planted = _plant_audio(s, model)
    assert not [p for p in check(str(tmp_path)) if p.startswith("audio/")]

    kept = next(r for r in planted if r.endswith(".kept.flac"))
    s.remove(kept.replace(".kept.", ".removed."))
    s.write_bytes(kept, _tone(300.0, n=RATE // 2))  # longer than its original
    s.write_bytes(
        schema.audio_file(model, "id10001/x/00009", "saliency", "traversal", "kept"), b"x"
    )
    s.write_bytes(f"{schema.AUDIO_PATH}/{model}/notes.txt", b"")
    problems = [p for p in check(str(tmp_path)) if p.startswith("audio/")]
    assert any(p.startswith(kept) and "no removed part" in p for p in problems)
    assert any(p.startswith(kept) and "its original has" in p for p in problems)
    assert any("00009/saliency.traversal.kept.flac: does not decode" in p for p in problems)
    assert any(p.endswith("notes.txt: not an audio/ file the contract names") for p in problems)


def test_encoded_audio_decodes_to_the_samples_within_16_bits() -> None:
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    back, rate = sf.read(io.BytesIO(encode_flac(wave, RATE)))
    assert rate == RATE and back.shape == wave.shape
    assert np.abs(back - wave).max() <= 1.0 / 32768
