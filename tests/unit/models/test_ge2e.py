"""Resemblyzer's GE2E as a voxray model: ``--model resemblyzer`` (or its pretrained.pt) gives the
embeddings ``VoiceEncoder.embed_utterance`` gives, on synthetic and real recorded speech, read
without importing resemblyzer and with ``weights_only=True``; it is explained through the
attribution API (gradients and perturbations agree with Captum run directly), and the methods
not defined for an LSTM are refused at configuration time, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from captum.attr import InputXGradient, IntegratedGradients, Occlusion

from tests.support.voices import synthetic_voices
from voxray.attribution import attribute
from voxray.attribution.pathways import MeanEmbedding
from voxray.cli import main
from voxray.config import AttributionConfig
from voxray.corpus.audio import resample
from voxray.models.checkpoint import CheckpointError, LoadedModel, load_model
from voxray.models.ge2e import Ge2eLstm

resemblyzer = pytest.importorskip("resemblyzer")
from resemblyzer import VoiceEncoder, preprocess_wav  # noqa: E402

ASTERISK = Path("/usr/share/asterisk/sounds")
REAL_VOICES = ("en_US_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_model("resemblyzer")


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder("cpu", verbose=False)


def _embed(loaded: LoadedModel, waves: list[np.ndarray]) -> np.ndarray:
    spec = loaded.front_end.build()
    feats = spec.compute(waves, 16000)
    with torch.no_grad():
        return np.stack(
            [loaded.classifier.embed(torch.from_numpy(f)[None])[0].numpy() for f in feats]
        )


def _real() -> list[np.ndarray]:
    waves = []
    for voice in REAL_VOICES:
        files = sorted((ASTERISK / voice).glob("conf-*.wav"))[:1]
        for f in files:
            x, sr = sf.read(str(f), dtype="float32")
            waves.append(resample(x, sr, 16000))
    return waves


def test_equals_resemblyzer_on_synthetic_speech(
    loaded: LoadedModel, encoder: VoiceEncoder, rng: np.random.Generator
) -> None:
    waves = [preprocess_wav(w) for w in synthetic_voices(rng)]
    ours = _embed(loaded, waves)
    ref = np.stack([encoder.embed_utterance(w) for w in waves])
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999, cos


def test_equals_resemblyzer_on_real_speech(loaded: LoadedModel, encoder: VoiceEncoder) -> None:
    waves = [w for w in _real() if w.size]
    if len(waves) < 2:
        pytest.skip(f"asterisk-core-sounds-*-wav not installed under {ASTERISK}")
    waves = [preprocess_wav(w) for w in waves]
    ours = _embed(loaded, waves)
    ref = np.stack([encoder.embed_utterance(w) for w in waves])
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, cos
    # and the speakers differ: the model is not a constant
    assert (ours @ ours.T).min() < 0.9


def test_batched_forward_equals_one_by_one(loaded: LoadedModel) -> None:
    x = torch.rand(3, 314, 40, generator=torch.Generator().manual_seed(0))
    model = loaded.classifier.embedder
    with torch.no_grad():
        batch = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        short = model(x[:1, :100])  # shorter than one window: zero-padded to 160 frames
        padded = model(torch.nn.functional.pad(x[:1, :100], (0, 0, 0, 60)))
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short, padded)
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(3))


def test_path_to_pretrained_pt_and_no_resemblyzer_import(tmp_path: Path) -> None:
    weights = Path(resemblyzer.__path__[0]) / "pretrained.pt"
    code = (
        "import sys; from voxray.models.checkpoint import load_model; "
        f"m = load_model({str(weights)!r}); r = load_model('resemblyzer'); "
        "assert m.front_end.name == r.front_end.name == 'ge2e_mel'; "
        "assert not m.has_head and m.input_dim == 40; "
        "assert 'resemblyzer' not in sys.modules and 'librosa' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_refuses_pickled_code_and_other_files(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"model_state": {"x": Path("/")}}, evil)  # a pickled object, not a tensor
    with pytest.raises(CheckpointError, match="evil.pt: refused or unreadable with weights_only"):
        load_model(str(evil))
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="other.pt: not a GE2E encoder checkpoint"):
        load_model(str(other))
    with pytest.raises(FileNotFoundError, match="absent.pt: not found"):
        load_model(str(tmp_path / "absent.pt"))


# --------------------------------------------------------------------------- explaining it

PARAMS = AttributionConfig(
    baseline="zeros", ig_steps=8, occlusion_frames=40, occlusion_bins=20, internal_batch_size=64
)


@pytest.fixture(scope="module")
def mel() -> torch.Tensor:
    """One 1.6 s utterance's features, as the front-end makes them (mel power)."""
    rng = np.random.default_rng(5)
    wave = synthetic_voices(rng)[1]
    feats = load_model("resemblyzer").front_end.build().compute([wave], 16000)[0]
    return torch.from_numpy(feats)[None]


def test_traversal_gradients_equal_captum(loaded: LoadedModel, mel: torch.Tensor) -> None:
    model = loaded.classifier
    mean = MeanEmbedding(model.embedder)
    ixg = attribute(model, mel, "input_x_gradient", "traversal", params=PARAMS)
    torch.testing.assert_close(ixg.maps, InputXGradient(mean).attribute(mel.clone()))
    ig = attribute(model, mel, "integrated_gradients", "traversal", params=PARAMS)
    ref = IntegratedGradients(mean).attribute(mel, baselines=torch.zeros_like(mel), n_steps=8)
    torch.testing.assert_close(ig.maps, ref, atol=1e-6, rtol=1e-4)
    # the completeness error reported is |sum(A) - (F(x) - F(0))| / |F(x) - F(0)|
    with torch.no_grad():
        gap = mean(mel) - mean(torch.zeros_like(mel))
    expected = ((ig.maps.sum() - gap).abs() / gap.abs()).item()
    assert ig.completeness_error.item() == pytest.approx(expected, rel=1e-3)


def test_occlusion_equals_captum(loaded: LoadedModel, mel: torch.Tensor) -> None:
    model = loaded.classifier
    occ = attribute(model, mel, "occlusion", "traversal", params=PARAMS)
    ref = Occlusion(MeanEmbedding(model.embedder)).attribute(
        mel, sliding_window_shapes=(40, 20), strides=(40, 20), baselines=torch.zeros_like(mel)
    )
    torch.testing.assert_close(occ.maps, ref, atol=1e-6, rtol=1e-4)
    assert occ.maps.abs().max() > 0


def test_shapley_sampling_runs(loaded: LoadedModel, mel: torch.Tensor) -> None:
    params = AttributionConfig(
        baseline="zeros", shapley_samples=1, patch_frames=80, patch_bins=20, internal_batch_size=8
    )
    res = attribute(loaded.classifier, mel, "shapley_sampling", "traversal", params=params)
    assert res.maps.shape == mel.shape and torch.isfinite(res.maps).all()
    # Shapley values of the 4 patches are efficient: they sum to F(x) - F(baseline)
    mean = MeanEmbedding(loaded.classifier.embedder)
    with torch.no_grad():
        gap = float(mean(mel) - mean(torch.zeros_like(mel)))
    per_patch = res.maps[0, ::80, ::20]  # one value per patch, repeated over its cells
    assert float(per_patch.sum()) == pytest.approx(gap, rel=1e-3, abs=1e-6)


def test_undefined_methods_refused_at_config_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "attribute",
            "--data-root",
            str(tmp_path),
            "--out",
            str(out),
            "--model",
            "resemblyzer",
            "attribution.methods=[saliency,layer_cam,lrp_epsilon,deeplift,occlusion]",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "configuration error: attribution.methods: layer_cam, lrp_epsilon, deeplift" in err
    assert "not defined for model 'resemblyzer' (Ge2eLstm)" in err
    assert "no convolution" in err and "LRP has no rule for 'embedder.lstm' (LSTM)" in err
    assert "saliency" not in err.split("not defined")[0] and "leave the key to its default" in err
    assert not out.exists() or not any(out.iterdir())  # nothing was started or written


def test_ge2e_is_a_registered_architecture() -> None:
    from voxray.config import ModelConfig
    from voxray.models import build_embedder

    emb = build_embedder(ModelConfig(arch="ge2e", channels=32, embedding_dim=16), 40)
    assert isinstance(emb, Ge2eLstm) and emb(torch.rand(2, 200, 40)).shape == (2, 16)


def test_undefined_trial_method_refused_at_config_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--data-root", str(tmp_path), "--out", str(tmp_path / "out"), "--model", "resemblyzer"]
    assert main(["trial", *args, "trial.methods=[integrated_gradients,deeplift]"]) == 2
    err = capsys.readouterr().err
    assert "trial.methods: deeplift not defined for model 'resemblyzer' (Ge2eLstm)" in err
    assert "(LSTM) cannot be propagated by Captum's DeepLift" in err
