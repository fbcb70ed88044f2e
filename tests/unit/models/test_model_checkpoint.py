"""save_model / load_model: round trips (local and S3), refused pickles, mismatch messages."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

from voxray.config import HeadConfig, ModelConfig, S3Config
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.models.checkpoint import CheckpointError, load_model, save_model

TINY_ECAPA = {"mfa_channels": 96, "attention_channels": 8, "se_channels": 8}
ECAPA_CFG = ModelConfig(
    arch="ecapa_tdnn", channels=32, embedding_dim=16, head=HeadConfig(kind="am", margin=0.3)
)


def _tiny_ecapa(num_classes: int = 3) -> SpeakerClassifier:
    model = build_classifier(ECAPA_CFG, 24, num_classes, **TINY_ECAPA)
    with torch.no_grad():  # move BN statistics off their defaults so a lost buffer shows
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _save_tiny(root: Path, name: str = "m") -> tuple[SpeakerClassifier, str]:
    model = _tiny_ecapa()
    storage = Storage(str(root))
    save_model(storage, f"models/{name}", model, ECAPA_CFG, ["a", "b", "c"], 24, {"epochs": 2})
    return model, str(root / "models" / name)


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: a file appears if the pickle is executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_round_trip_restores_outputs_and_metadata(tmp_path: Path) -> None:
    model, folder = _save_tiny(tmp_path, "ecapa-x")
    meta = yaml.safe_load((Path(folder) / "config.yaml").read_text())
    assert meta["speakers"] == ["a", "b", "c"] and meta["input_dim"] == 24
    assert meta["options"]["mfa_channels"] == 96 and meta["extra"] == {"epochs": 2}
    loaded = load_model(folder)
    assert loaded.cfg == ECAPA_CFG and loaded.name == "ecapa-x" and loaded.has_head
    assert loaded.speakers == ["a", "b", "c"] and loaded.input_dim == 24
    assert not loaded.classifier.training
    x = torch.randn(2, 30, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.classifier(x), model(x), rtol=0, atol=0)
        labels = torch.tensor([0, 2])
        torch.testing.assert_close(loaded.classifier.loss(x, labels)[0], model.loss(x, labels)[0])
    rebuilt = build_classifier(loaded.cfg, loaded.input_dim, len(loaded.speakers), **loaded.options)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize(
    ("cfg", "options"),
    [
        (ModelConfig(arch="resnet34", channels=4, embedding_dim=8), {}),
        (ModelConfig(arch="resnet34se", channels=4, embedding_dim=8), {}),
        (ModelConfig(arch="bilstm", channels=6, embedding_dim=5), {}),
        (
            ModelConfig(arch="alexnet", embedding_dim=16, head=HeadConfig(kind="softmax")),
            {"input_frames": 80},
        ),
    ],
    ids=["resnet34", "resnet34se", "bilstm", "alexnet"],
)
def test_round_trip_other_architectures(
    tmp_path: Path, cfg: ModelConfig, options: dict[str, int]
) -> None:
    model = build_classifier(cfg, 64, 2, **options).eval()
    save_model(Storage(str(tmp_path)), "models/x", model, cfg, ["f", "m"], 64)
    loaded = load_model(str(tmp_path / "models" / "x"))
    assert loaded.options == options
    x = torch.randn(2, 90, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.classifier(x), model(x), rtol=0, atol=0)


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    _, folder = _save_tiny(tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"x": _CreatesFile(marker)}, Path(folder) / "model.pt")
    with pytest.raises(CheckpointError, match=r"model\.pt: refused or unreadable"):
        load_model(folder)
    assert not marker.exists()
    # the same for a SpeechBrain checkpoint, and for a raw pickle (not a torch zip file)
    sb = tmp_path / "sb"
    sb.mkdir()
    with open(sb / "embedding_model.ckpt", "wb") as f:
        pickle.dump(_CreatesFile(marker), f, protocol=2)
    with pytest.raises(CheckpointError, match="embedding_model.ckpt: refused"):
        load_model(str(sb / "embedding_model.ckpt"))
    assert not marker.exists()
    # the payload is armed: a full unpickle does create the file
    torch.load(Path(folder) / "model.pt", weights_only=False)
    assert marker.exists()


def test_shape_mismatch_names_the_key(tmp_path: Path) -> None:
    _, folder = _save_tiny(tmp_path)
    config = Path(folder) / "config.yaml"
    meta = yaml.safe_load(config.read_text())
    meta["model"]["embedding_dim"] = 12
    config.write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert "model.pt: does not match SpeakerClassifier" in str(err.value)
    expected = "shape mismatch embedder.fc.weight: checkpoint (16, 192, 1) vs model (12, 192, 1)"
    assert expected in str(err.value)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    _, folder = _save_tiny(tmp_path)
    state = torch.load(Path(folder) / "model.pt", weights_only=True)
    state["embedder.extra.weight"] = state.pop("embedder.mfa.norm.running_var")
    torch.save(state, Path(folder) / "model.pt")
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert "missing keys embedder.mfa.norm.running_var" in str(err.value)
    assert "unexpected keys embedder.extra.weight" in str(err.value)


def test_bad_config_and_missing_paths(tmp_path: Path) -> None:
    _, folder = _save_tiny(tmp_path)
    config = Path(folder) / "config.yaml"
    meta = yaml.safe_load(config.read_text())
    meta["model"]["arch"] = "transformer"
    config.write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match=r"config\.yaml: .*arch"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="not a voxray model folder"):
        load_model(str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="embedding_model.ckpt: not found"):
        load_model(str(tmp_path / "embedding_model.ckpt"))


def test_save_rejects_speaker_count_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 speakers for a head of 3 classes"):
        save_model(Storage(str(tmp_path)), "m", _tiny_ecapa(3), ECAPA_CFG, ["a", "b"], 24)
    assert not (tmp_path / "m").exists()


def test_round_trip_through_s3(s3_endpoint: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="voxray-models")
    s3 = S3Config(endpoint_url=s3_endpoint)
    model = _tiny_ecapa()
    storage = Storage("s3://voxray-models/run", s3)
    save_model(storage, "models/m", model, ECAPA_CFG, ["a", "b", "c"], 24)
    loaded = load_model("s3://voxray-models/run/models/m/", s3)
    assert loaded.name == "m" and loaded.speakers == ["a", "b", "c"]
    x = torch.randn(1, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.classifier(x), model(x), rtol=0, atol=0)
