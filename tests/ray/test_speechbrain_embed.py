"""SpeechBrain end to end, as a user runs it: ``voxray embed --data-root C --out FRESH --model
sb/embedding_model.ckpt`` in one command (manifest and features run first) gives SpeechBrain's
own embeddings: per utterance cosine >= 0.999 against SpeechBrain's pipeline (Fbank ->
InputNormalization(sentence) -> ECAPA_TDNN) run here on the same files. Seeded random ECAPAs
(C=512 and C=1024) saved with SpeechBrain's own checkpoint writer; synthetic voices and real
recorded speech, Debian's asterisk prompts (set-up installs them; the test fails without them),
resampled to 16 kHz. A voxray
model on Kaldi fbank then embeds into the same --out: two front-ends in one run."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from tests.support.pipeline import kill_private_ray, private_ray_env, read, run_cli, survivors
from voxray.config import FeatureConfig, ModelConfig
from voxray.features import compute_features
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.testing.speechbrain_reference import (
    recipe,
    speechbrain_ecapa,
    speechbrain_embeddings,
    write_checkpoint,
)

pytestmark = pytest.mark.ray

ASTERISK = Path("/usr/share/asterisk/sounds")
#: one real speaker per Debian voice package (folder names as the -wav packages install them)
VOICES = ("en_US_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo")
PROMPTS = 4


def _real_speech(corpus: Path) -> int:
    """Copy ``PROMPTS`` asterisk prompts per voice into ``corpus`` at 16 kHz (16-bit); fails,
    naming what is missing, unless every voice has them (set-up installs them: without them the
    checks against SpeechBrain would run on synthetic speech alone)."""
    added = 0
    for k, voice in enumerate(VOICES):
        folder = ASTERISK / voice
        wavs = (f for f in sorted(folder.glob("*.wav")) if sf.info(str(f)).samplerate == 8000)
        files = list(itertools.islice(wavs, PROMPTS))
        if len(files) < PROMPTS:
            pytest.fail(
                f"{folder}: {len(files)} 8 kHz prompts, {PROMPTS} needed: install Debian's "
                "asterisk-prompt packages (bash scripts/setup.sh does)",
                pytrace=False,
            )
        for i, src in enumerate(files):
            wave, sr = sf.read(str(src), dtype="float64")
            assert sr == 8000 and wave.ndim == 1, (src, sr, wave.shape)
            dst = corpus / "wav" / f"id9000{k}" / "real" / f"{i:05d}.wav"
            dst.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(dst), signal.resample_poly(wave, 2, 1), 16000, subtype="PCM_16")
            added += 1
    return added


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    from voxray.corpus.synth import synth_corpus

    root = tmp_path_factory.mktemp("sb") / "corpus"
    synth_corpus(str(root), speakers=3, videos=2, utts=2, seed=13, test_speakers=2, jobs=2)
    return root, _real_speech(root)


def _embeddings(out: Path, model: str) -> dict[str, np.ndarray]:
    t = read(out, "embeddings").to_pandas()
    t = t[(t.model == model) & (t.segment == -1) & (t.condition == "none")]
    return {u: np.asarray(e, np.float32) for u, e in zip(t.utt_id, t.embedding, strict=True)}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _check_against_speechbrain(
    out: Path, corpus: Path, model: torch.nn.Module, name: str, real: int
) -> np.ndarray:
    manifest = read(out, "manifest.parquet").to_pandas()
    ours = _embeddings(out, name)
    assert set(ours) == set(manifest.utt_id)
    ref = speechbrain_embeddings(model, [corpus / p for p in manifest.path])
    cos = _cosines(np.stack([ours[u] for u in manifest.utt_id]), ref)
    assert cos.min() >= 0.999, sorted(zip(cos, manifest.utt_id, strict=True))[:3]
    assert (manifest.speaker_id.str.startswith("id9000")).sum() == real
    return cos


def _fresh_out_embed(root: Path, out: Path, ckpt: Path) -> None:
    """One command on a fresh --out; only the model's own front-end is computed. Nothing of
    the local Ray it started outlives it."""
    env = private_ray_env()
    proc = run_cli(
        "embed",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--model",
        str(ckpt),
        "embed.segments=false",
        "embed.from_audio=false",  # the staged path: features/ of the model's front-end
        env=env,
    )
    assert survivors(env) == []
    kill_private_ray(env)  # its temp folder
    assert "running manifest first" in proc.stderr + proc.stdout
    assert stage_info(Storage(str(out)), "features")["kinds"] == ["sb_fbank"]
    assert not (out / "features" / "kind=fbank").exists()


def test_embed_speechbrain_checkpoint_on_fresh_out(
    corpus: tuple[Path, int], tmp_path: Path
) -> None:
    """C=1024 with the recipe's hyperparams.yaml beside it (C=512 without: the next test)."""
    root, real = corpus
    sb = speechbrain_ecapa(1024, seed=1024)
    ckpt = write_checkpoint(tmp_path / "sb1024", sb, channels=1024)
    out = tmp_path / "out"
    _fresh_out_embed(root, out, ckpt)
    _check_against_speechbrain(out, root, sb, "sb1024", real)


def test_two_front_ends_in_one_out(corpus: tuple[Path, int], tmp_path: Path) -> None:
    """A SpeechBrain C=512 model (its Fbank) on a fresh --out, then a voxray model (Kaldi
    fbank, CMN) on the same --out: features adds the second partition, each model reads its own."""
    root, real = corpus
    sb = speechbrain_ecapa(512, seed=3)
    write_checkpoint(tmp_path, sb)
    cfg = ModelConfig(channels=64, embedding_dim=32)
    torch.manual_seed(5)
    mine = build_classifier(cfg, 80, 2).eval()
    save_model(Storage(str(tmp_path)), "models/kaldi", mine, cfg, ["a", "b"], 80)
    out = tmp_path / "out"
    common = ("--data-root", str(root), "--out", str(out))
    _fresh_out_embed(root, out, tmp_path / "embedding_model.ckpt")
    run_cli(
        "embed",
        *common,
        "--model",
        str(tmp_path / "models" / "kaldi"),
        "embed.segments=false",
        "embed.from_audio=false",
    )
    manifest = read(out, "manifest.parquet").to_pandas()
    assert stage_info(Storage(str(out)), "features")["kinds"] == ["fbank", "sb_fbank"]
    assert read(out, "features", ["kind"]).num_rows == 2 * len(manifest)
    # the SpeechBrain model kept its own features
    _check_against_speechbrain(out, root, sb, tmp_path.name, real)
    # the voxray model got Kaldi fbank with CMN, computed here independently of the run
    kaldi = _embeddings(out, "kaldi")
    waves = [sf.read(str(root / p), dtype="float32")[0] for p in manifest.path]
    feats = compute_features(waves, 16000, FeatureConfig(), "fbank")
    with torch.inference_mode():
        ref = np.stack([mine.embedder(torch.from_numpy(f)[None])[0].numpy() for f in feats])
    cos = _cosines(np.stack([kaldi[u] for u in manifest.utt_id]), ref)
    assert cos.min() >= 0.999
    # attribute reads the SpeechBrain model's own partition: maps are sb_fbank-shaped
    run_cli(
        "attribute",
        *common,
        "--model",
        str(tmp_path / "embedding_model.ckpt"),
        "attribution.methods=[saliency]",
        "attribution.pathways=[traversal]",
        "attribution.max_utterances=2",
        # no mask conditions: their IG maps of every utterance are the stage's bulk (minutes)
        "mask.conditions=[]",
    )
    maps = read(out, "attributions").to_pandas()
    feats = read(out, "features").to_pandas().set_index(["kind", "utt_id"])
    assert len(maps) >= 2 and set(maps.model) == {tmp_path.name}
    for u, t, f in zip(maps.utt_id, maps.num_frames, maps.num_bins, strict=True):
        sb_rows, kaldi_rows = feats.loc[("sb_fbank", u)], feats.loc[("fbank", u)]
        assert (t, f) == (sb_rows.num_frames, sb_rows.num_bins) != (kaldi_rows.num_frames, 80)


def test_unsupported_front_end_is_refused_before_work(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, speechbrain_ecapa(512, seed=1))
    (tmp_path / "hyperparams.yaml").write_text(
        recipe(512).replace("norm_type: sentence", "norm_type: global")
    )
    proc = run_cli(
        "embed",
        "--data-root",
        str(tmp_path),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(tmp_path / "embedding_model.ckpt"),
        check=False,
    )
    assert proc.returncode != 0
    assert "mean_var_norm.norm_type = 'global' is not supported" in proc.stderr
    assert not (tmp_path / "out" / "manifest.parquet").exists()
