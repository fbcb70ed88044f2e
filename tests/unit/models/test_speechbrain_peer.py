"""SpeechBrain's ECAPA_TDNN (+ Classifier) saved as checkpoints and loaded with load_model give
the same embeddings and logits as SpeechBrain itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

from voxray.models.checkpoint import CheckpointError, load_model
from voxray.models.ecapa_tdnn import EcapaTdnn
from voxray.models.speechbrain_convert import convert_speechbrain_ecapa, convert_speechbrain_key

HPARAMS = """\
n_mel: 80
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mel>
    channels: [512, 512, 512, 512, 1536]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 128
    lin_neurons: 192
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 192
    out_neurons: 4
"""
LABELS = """\
'id10001' => 0
'id10002' => 1
'id10003' => 2
'id10004' => 3
================
'starting_index' => 0
"""


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)


@pytest.fixture(scope="module")
def speechbrain_ecapa() -> ECAPA_TDNN:
    torch.manual_seed(7)
    model = ECAPA_TDNN(
        input_size=80,
        channels=[512, 512, 512, 512, 1536],
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=128,
        lin_neurons=192,
    )
    _randomise_batchnorm(model)
    return model.eval()


def test_load_model_matches_speechbrain_embeddings(
    speechbrain_ecapa: ECAPA_TDNN, tmp_path: Path
) -> None:
    torch.save(speechbrain_ecapa.state_dict(), tmp_path / "embedding_model.ckpt")
    loaded = load_model(str(tmp_path / "embedding_model.ckpt"))
    assert (loaded.cfg.arch, loaded.cfg.channels, loaded.cfg.embedding_dim, loaded.input_dim) == (
        "ecapa_tdnn",
        512,
        192,
        80,
    )
    assert loaded.options["mfa_channels"] == 1536 and not loaded.has_head and loaded.speakers == []
    x = torch.randn(2, 100, 80)
    with torch.no_grad():
        expected = speechbrain_ecapa(x)  # (B, 1, D)
        got = loaded.classifier.embed(x)
    assert expected.shape == (2, 1, 192) and got.shape == (2, 192)
    torch.testing.assert_close(got, expected.squeeze(1), atol=1e-4, rtol=0)


def test_classifier_ckpt_becomes_aam_head(speechbrain_ecapa: ECAPA_TDNN, tmp_path: Path) -> None:
    classifier = Classifier(input_size=192, out_neurons=4)
    torch.save(speechbrain_ecapa.state_dict(), tmp_path / "embedding_model.ckpt")
    torch.save(classifier.state_dict(), tmp_path / "classifier.ckpt")
    (tmp_path / "hyperparams.yaml").write_text(HPARAMS)
    (tmp_path / "label_encoder.txt").write_text(LABELS)
    loaded = load_model(str(tmp_path))  # the folder holding embedding_model.ckpt
    assert loaded.has_head and loaded.classifier.num_classes == 4
    assert loaded.speakers == ["id10001", "id10002", "id10003", "id10004"]
    assert loaded.cfg.head.kind == "aam" and loaded.name == tmp_path.name
    x = torch.randn(2, 100, 80)
    with torch.no_grad():
        cosine = classifier(speechbrain_ecapa(x)).squeeze(1)
        logits = loaded.classifier(x)
    torch.testing.assert_close(logits, 30.0 * cosine, atol=1e-4, rtol=0)


def test_hyperparams_with_other_dilations_are_refused(
    speechbrain_ecapa: ECAPA_TDNN, tmp_path: Path
) -> None:
    torch.save(speechbrain_ecapa.state_dict(), tmp_path / "embedding_model.ckpt")
    other = HPARAMS.replace("[1, 2, 3, 4, 1]", "[1, 2, 2, 2, 1]")
    (tmp_path / "hyperparams.yaml").write_text(other)
    with pytest.raises(CheckpointError, match="hyperparams.yaml: embedding_model.dilations"):
        load_model(str(tmp_path / "embedding_model.ckpt"))


def test_label_count_must_match_classifier(speechbrain_ecapa: ECAPA_TDNN, tmp_path: Path) -> None:
    torch.save(speechbrain_ecapa.state_dict(), tmp_path / "embedding_model.ckpt")
    torch.save(Classifier(input_size=192, out_neurons=3).state_dict(), tmp_path / "classifier.ckpt")
    (tmp_path / "label_encoder.txt").write_text(LABELS)
    with pytest.raises(CheckpointError, match="label_encoder.txt: 4 labels for 3 classes"):
        load_model(str(tmp_path / "embedding_model.ckpt"))


def test_key_conversion_is_one_to_one(speechbrain_ecapa: ECAPA_TDNN) -> None:
    converted = convert_speechbrain_ecapa(speechbrain_ecapa.state_dict())
    assert set(converted) == set(EcapaTdnn(80, 512, 192).state_dict())
    assert convert_speechbrain_key("blocks.2.res2net_block.blocks.6.norm.norm.running_var") == (
        "block2.res2net.blocks.6.norm.running_var"
    )
    assert convert_speechbrain_key("asp_bn.norm.weight") == "pool_bn.weight"
    with pytest.raises(KeyError, match="not a SpeechBrain"):
        convert_speechbrain_key("weight")
