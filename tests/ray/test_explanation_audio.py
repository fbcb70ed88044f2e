"""The attribute stage writes explanations you can listen to (audio/): for the heat-map
utterance the report shows, the original and each map's kept and removed speech, equal to
``voxray.mask.audio`` on that map and adding up to the original; ``voxray check`` accepts
them, and a rerun writes nothing again."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import soundfile as sf

from voxray import schema
from voxray.check import check
from voxray.config import load_config
from voxray.features.kaldi import kaldi_front_end
from voxray.mask.audio import split_speech
from voxray.pipeline.attribute_stage import run_attribute
from voxray.pipeline.context import RunContext
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray
RATE = 16000
METHODS = ("saliency", "input_x_gradient")


def _write_corpus(root: Path, manifest) -> dict[str, np.ndarray]:
    """A 16-bit wav of the manifest's length at each manifest path (tones and noise)."""
    rng = np.random.default_rng(5)
    waves = {}
    for utt, path, n in zip(manifest.utt_id, manifest.path, manifest.num_samples, strict=True):
        t = np.arange(n) / RATE
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(n)
        dst = root / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), wave, RATE, subtype="PCM_16")
        waves[utt] = sf.read(str(dst), dtype="float32")[0]
    return waves


def _read(s, rel: str) -> np.ndarray:
    return sf.read(io.BytesIO(s.read_bytes(rel)), dtype="float32")[0]


def test_attribute_writes_the_heat_map_utterances_audio(ray_local, tmp_path: Path) -> None:
    out, corpus = tmp_path / "out", tmp_path / "corpus"
    s = make_outputs(str(out), speakers=4, utts=2, frames=60, bins=80)
    waves = _write_corpus(corpus, s.read_pandas(schema.MANIFEST_PATH))
    cfg = load_config(
        profile="smoke",
        overrides=[
            f"out={out}",
            f"data_root={corpus}",
            f"attribution.methods=[{','.join(METHODS)}]",
            "attribution.pathways=[traversal]",
            "attribution.resources.concurrency=1",
            "mask.conditions=[]",
            "report.heatmap_utterances=1",
        ],
    )
    result = run_attribute(RunContext(cfg))
    files = s.find(schema.AUDIO_PATH)
    assert result.info["audio_files"] == len(files) == 1 + 2 * len(METHODS)
    utts = {schema.parse_audio_file(f)[1] for f in files}
    assert len(utts) == 1
    (utt,) = utts
    original = _read(s, schema.audio_file("ecapa", utt))
    np.testing.assert_allclose(original, waves[utt], atol=1.5 / 32768)

    view = kaldi_front_end("fbank", cfg.features).build().spectral_view(RATE)
    maps = s.read_table(schema.ATTRIBUTIONS_PATH, filter=pc.field("utt_id") == utt)
    for method, a in zip(maps.column("method").to_pylist(), schema.matrices(maps), strict=True):
        kept, removed = (
            _read(s, schema.audio_file("ecapa", utt, str(method), "traversal", part))
            for part in schema.AUDIO_PARTS
        )
        direct = split_speech(original, a, view)
        np.testing.assert_allclose(kept, direct.kept, atol=1.5 / 32768)
        np.testing.assert_allclose(removed, direct.removed, atol=1.5 / 32768)
        residual = kept + removed - original
        assert 10 * np.log10(np.sum(original**2) / np.sum(residual**2)) >= 30.0
    assert not [p for p in check(str(out)) if p.startswith("audio/")]

    again = run_attribute(RunContext(cfg))
    assert again.info["audio_files"] == 0
