"""Every loaded model carries the front-end it was trained on: voxray folders record it in
config.yaml; a SpeechBrain checkpoint takes it from the hyperparams.yaml beside it (or the
VoxCeleb recipe's without one), and a setting voxray does not implement is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from voxray.config import FeatureConfig, ModelConfig
from voxray.features import FrontEndSpec, SpeechBrainFbankParams, kaldi_front_end
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import CheckpointError, load_model, save_model

FBANK = """\
n_mels: {n}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
{extra}"""
NORM = """\
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: {norm_type}
    std_norm: {std}
"""


def _sb_checkpoint(folder: Path, input_size: int, hparams: str | None) -> Path:
    model = ECAPA_TDNN(input_size=input_size, channels=[32, 32, 32, 32, 96], lin_neurons=16)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    if hparams is not None:
        (folder / "hyperparams.yaml").write_text(hparams)
    return folder / "embedding_model.ckpt"


def test_speechbrain_without_hyperparams_gets_the_recipe_front_end(tmp_path: Path) -> None:
    loaded = load_model(str(_sb_checkpoint(tmp_path, 80, None)))
    assert loaded.front_end == FrontEndSpec("sb_fbank", SpeechBrainFbankParams(n_mels=80))


def test_speechbrain_front_end_from_hyperparams(tmp_path: Path) -> None:
    text = FBANK.format(
        n=40,
        extra="    f_min: 50\n    f_max: 7800\n    deltas: True\n"
        + NORM.format(norm_type="sentence", std="True"),
    )
    loaded = load_model(str(_sb_checkpoint(tmp_path, 120, text)))
    assert loaded.front_end.params == SpeechBrainFbankParams(
        n_mels=40, f_min=50.0, f_max=7800.0, deltas=True, norm="sentence", std_norm=True
    )


def test_speechbrain_features_without_normalisation(tmp_path: Path) -> None:
    loaded = load_model(str(_sb_checkpoint(tmp_path, 80, FBANK.format(n=80, extra=""))))
    assert loaded.front_end.params.norm == "none"


@pytest.mark.parametrize(
    "extra, input_size, message",
    [
        (
            NORM.format(norm_type="global", std="False"),
            80,
            "mean_var_norm.norm_type = 'global' is not supported",
        ),
        ("    context: True\n", 80, "compute_features.context = True is not supported"),
        ("    filter_shape: gaussian\n", 80, "compute_features.filter_shape = 'gaussian'"),
        ("    log_mel: False\n", 80, "compute_features.log_mel is not a supported Fbank setting"),
        ("", 64, "compute_features gives 80 features per frame .* but the network takes 64"),
    ],
    ids=["global-norm", "context", "filter-shape", "unknown-key", "size"],
)
def test_unsupported_speechbrain_front_end_is_named(
    tmp_path: Path, extra: str, input_size: int, message: str
) -> None:
    ckpt = _sb_checkpoint(tmp_path, input_size, FBANK.format(n=80, extra=extra))
    with pytest.raises(CheckpointError, match=rf"hyperparams\.yaml: {message}"):
        load_model(str(ckpt))


def test_speechbrain_mfcc_front_end_is_refused(tmp_path: Path) -> None:
    text = "compute_features: !new:speechbrain.lobes.features.MFCC\n    n_mels: 80\n"
    with pytest.raises(
        CheckpointError, match="compute_features is speechbrain.lobes.features.MFCC"
    ):
        load_model(str(_sb_checkpoint(tmp_path, 80, text)))


def test_voxray_model_records_its_front_end(tmp_path: Path) -> None:
    cfg = ModelConfig(arch="ecapa_tdnn", channels=32, embedding_dim=16, feature_kind="mfcc")
    model = build_classifier(cfg, 30, 2)
    spec = kaldi_front_end("mfcc", FeatureConfig(num_mel_bins=40, num_ceps=30, vad=True))
    save_model(Storage(str(tmp_path)), "models/m", model, cfg, ["a", "b"], 30, front_end=spec)
    written = yaml.safe_load((tmp_path / "models/m/config.yaml").read_text())
    assert written["front_end"]["name"] == "mfcc"
    assert written["front_end"]["params"]["num_ceps"] == 30
    assert load_model(str(tmp_path / "models/m")).front_end == spec


def test_voxray_model_without_a_recorded_front_end(tmp_path: Path) -> None:
    """config.yaml files written before front-ends were recorded: the base Kaldi settings of
    the model's feature kind, sized to its input."""
    cfg = ModelConfig(arch="ecapa_tdnn", channels=32, embedding_dim=16)
    save_model(Storage(str(tmp_path)), "m", build_classifier(cfg, 40, 2), cfg, ["a", "b"], 40)
    path = tmp_path / "m/config.yaml"
    meta = yaml.safe_load(path.read_text())
    del meta["front_end"]
    path.write_text(yaml.safe_dump(meta))
    spec = load_model(str(tmp_path / "m")).front_end
    assert spec == kaldi_front_end("fbank", FeatureConfig(num_mel_bins=40))
    assert spec.build().num_bins == 40
