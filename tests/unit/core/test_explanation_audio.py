"""Which maps' audio the attribute stage writes (voxray.pipeline.explanation_audio), on
attributions/ written by hand: ``report`` the report's heat maps (one pathway per method, the
one the report shows), ``all`` every map, ``none`` nothing; a front-end without spectral bins
(MFCC) none, with the reason logged. The stage itself: tests/ray/test_explanation_audio.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from voxray import schema
from voxray.config import load_config
from voxray.features.kaldi import kaldi_front_end
from voxray.io.sink import write_partitioned
from voxray.io.storage import Storage
from voxray.pipeline import explanation_audio
from voxray.pipeline.context import RunContext
from voxray.pipeline.explanation_audio import write_explanation_audio
from voxray.testing.synthetic_outputs import make_outputs

RATE = 16000
METHODS = ("saliency", "input_x_gradient")
PATHWAYS = ("traversal", "classification")


def _outputs(tmp_path: Path) -> Storage:
    """make_outputs (2 speakers x 2 utterances), a wav per manifest path, and a random map per
    (utterance, method, pathway)."""
    s = make_outputs(str(tmp_path / "out"), speakers=2, utts=2, frames=40, bins=80)
    manifest = s.read_pandas(schema.MANIFEST_PATH)
    rng = np.random.default_rng(3)
    for path, n in zip(manifest.path, manifest.num_samples, strict=True):
        dst = tmp_path / "corpus" / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), 0.1 * rng.standard_normal(n), RATE, subtype="PCM_16")
    feats = s.read_table("features/kind=fbank")
    rows = [
        (u, m, p, x.shape[0])
        for u, x in zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True)
        for m in METHODS
        for p in PATHWAYS
    ]
    maps = [rng.standard_normal((t, 80)).astype(np.float32) for *_, t in rows]
    n = len(rows)
    table = schema.table(
        schema.ATTRIBUTIONS,
        {
            "utt_id": [r[0] for r in rows],
            "model": ["ecapa"] * n,
            "pathway": [r[2] for r in rows],
            "params": ["{}"] * n,
            "target": pa.array([-1] * n, pa.int32()),
            "num_frames": pa.array([r[3] for r in rows], pa.int32()),
            "num_bins": pa.array([80] * n, pa.int32()),
            "values": schema.floats_column(maps),
            "freq_profile": schema.floats_column([m.mean(axis=0) for m in maps]),
            "completeness_error": pa.array([None] * n, pa.float64()),
        },
    )
    table = table.append_column("method", pa.array([r[1] for r in rows], pa.string()))
    keys = ("utt_id", "method", "pathway")
    write_partitioned(s, schema.ATTRIBUTIONS_PATH, table, schema.ATTRIBUTIONS, keys, "method")
    return s


def _run(tmp_path: Path, s: Storage, mode: str, kind: str = "fbank") -> tuple[int, list[tuple]]:
    """Files written, and the audio/ files there after the call (parsed)."""
    cfg = load_config(
        overrides=[
            f"out={s.uri()}",
            f"data_root={tmp_path / 'corpus'}",
            f"attribution.audio={mode}",
            "report.heatmap_utterances=2",
        ]
    )
    written = write_explanation_audio(RunContext(cfg), "ecapa", kaldi_front_end(kind, cfg.features))
    return written, [schema.parse_audio_file(f) for f in s.find(schema.AUDIO_PATH)]


def test_report_mode_writes_the_shown_pathway_of_each_method(tmp_path: Path) -> None:
    s = _outputs(tmp_path)
    written, found = _run(tmp_path, s, "report")
    utts = {f[1] for f in found}
    assert len(utts) == 2  # report.heatmap_utterances
    maps = {(f[1], f[2], f[3]) for f in found if f[2]}
    # the report shows the classification output first (voxray.report.load.PATHWAY_PREFERENCE)
    assert maps == {(u, m, "classification") for u in utts for m in METHODS}
    assert written == len(found) == 2 * (1 + 2 * len(METHODS))
    assert _run(tmp_path, s, "report") == (0, found)  # a rerun writes nothing again


def test_all_mode_writes_every_map_and_none_mode_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _outputs(tmp_path)
    monkeypatch.setattr(explanation_audio, "CHUNK", 3)  # 4 utterances: two chunks
    assert _run(tmp_path, s, "none") == (0, [])
    written, found = _run(tmp_path, s, "all")
    utts = len(s.read_pandas(schema.MANIFEST_PATH))
    assert written == len(found) == utts * (1 + 2 * len(METHODS) * len(PATHWAYS))


def test_no_attributions_no_audio(tmp_path: Path) -> None:
    s = make_outputs(str(tmp_path / "out"), speakers=2, utts=1, frames=40, bins=80)
    assert _run(tmp_path, s, "all") == (0, [])


def test_a_front_end_without_spectral_bins_gets_no_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = _outputs(tmp_path)
    with caplog.at_level(logging.INFO, logger="voxray"):
        assert _run(tmp_path, s, "all", kind="mfcc") == (0, [])
    assert "front-end 'mfcc' has no STFT view" in caplog.text
