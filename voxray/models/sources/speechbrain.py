"""SpeechBrain ECAPA-TDNN checkpoints: an ``embedding_model.ckpt`` (or the folder holding one),
optionally with ``classifier.ckpt`` (its cosine classifier, loaded as an AAM head),
``label_encoder.txt`` (speaker names) and ``hyperparams.yaml`` beside it.

The architecture is read from the tensors' shapes; hyperparams.yaml, when present, is checked for
what shapes cannot show (kernel sizes, dilations, groups, global context) and names the
front-end (``compute_features`` / ``mean_var_norm``, ``voxray.models.speechbrain_hparams``);
without one the front-end is the VoxCeleb recipe's: Fbank(n_mels=input size) + sentence mean
norm.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from torch import Tensor

from voxray.config import HeadConfig, ModelConfig, S3Config
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.loaded import (
    CheckpointError,
    LoadedModel,
    first_items,
    load_state,
    read_state_dict,
)
from voxray.models.sources.base import ModelSource, register_source
from voxray.models.speechbrain_convert import convert_speechbrain_ecapa
from voxray.models.speechbrain_hparams import front_end_from_hparams, read_hparams

SB_EMBEDDING = "embedding_model.ckpt"
SB_CLASSIFIER = "classifier.ckpt"
SB_HPARAMS = "hyperparams.yaml"
SB_LABELS = "label_encoder.txt"
#: the SpeechBrain ECAPA_TDNN settings EcapaTdnn implements (hyperparams.yaml key -> value).
SB_FIXED = {
    "kernel_sizes": [5, 3, 3, 3, 1],
    "dilations": [1, 2, 3, 4, 1],
    "groups": [1, 1, 1, 1, 1],
    "global_context": True,
}
#: SpeechBrain's VoxCeleb ECAPA recipes train with AAM-softmax, margin 0.2, scale 30.
SB_HEAD = HeadConfig(kind="aam", margin=0.2, scale=30.0)


def _read_hparams(storage: Storage) -> dict[str, Any]:
    """The whole hyperparams.yaml as plain data (empty when there is none); its
    ``embedding_model`` section is checked against what EcapaTdnn implements."""
    if not storage.exists(SB_HPARAMS):
        return {}
    where = storage.uri(SB_HPARAMS)
    try:
        data = read_hparams(storage.read_text(SB_HPARAMS), where)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    section = data.get("embedding_model")
    if section is not None and not isinstance(section, dict):
        raise CheckpointError(f"{where}: embedding_model is not a mapping")
    for key, value in (section or {}).items():
        if key in SB_FIXED and value != SB_FIXED[key]:
            raise CheckpointError(
                f"{where}: embedding_model.{key} = {value!r}; "
                f"voxray's EcapaTdnn supports {SB_FIXED[key]!r}"
            )
    return data


def _shape(state: dict[str, Tensor], key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{where}: no {key!r} tensor (not a SpeechBrain ECAPA_TDNN)")
    return tuple(state[key].shape)


def ecapa_options_from_state(
    state: dict[str, Tensor], where: str
) -> tuple[int, int, int, dict[str, int]]:
    """``(input_dim, channels, embedding_dim, options)`` of an EcapaTdnn state_dict (our keys)."""
    channels, input_dim, _ = _shape(state, "conv1.conv.weight", where)
    mfa = _shape(state, "mfa.conv.weight", where)[0]
    embedding_dim = _shape(state, "fc.weight", where)[0]
    attention = _shape(state, "pool.conv.weight", where)[1]
    se = _shape(state, "block1.se.conv1.weight", where)[0]
    branch = re.compile(r"block1\.res2net\.blocks\.(\d+)\.")
    branches = {m.group(1) for k in state if (m := branch.match(k))}
    options = {
        "mfa_channels": mfa,
        "attention_channels": attention,
        "se_channels": se,
        "res2net_scale": len(branches) + 1,
    }
    return input_dim, channels, embedding_dim, options


def _read_labels(storage: Storage) -> list[str] | None:
    """Speaker names by class index from SpeechBrain's label_encoder.txt (``'id10001' => 0``)."""
    if not storage.exists(SB_LABELS):
        return None
    labels: dict[int, str] = {}
    for line in storage.read_text(SB_LABELS).splitlines():
        if line.startswith("="):
            break  # the encoder's own settings follow the separator
        m = re.match(r"^'(.*)' => (\d+)$", line.strip())
        if m:
            labels[int(m.group(2))] = m.group(1)
    if sorted(labels) != list(range(len(labels))):
        where = storage.uri(SB_LABELS)
        raise CheckpointError(f"{where}: class indices are not 0..{len(labels) - 1}")
    return [labels[i] for i in range(len(labels))]


def _classifier_weight(storage: Storage, embedding_dim: int) -> Tensor | None:
    """The cosine classifier's ``(n_classes, D)`` weight from classifier.ckpt, if present."""
    if not storage.exists(SB_CLASSIFIER):
        return None
    where = storage.uri(SB_CLASSIFIER)
    state = read_state_dict(storage, SB_CLASSIFIER)
    if set(state) != {"weight"}:
        raise CheckpointError(
            f"{where}: expected only the cosine classifier 'weight' (lin_blocks=0), "
            f"got keys {first_items(sorted(state))}"
        )
    weight = state["weight"]
    while weight.dim() > 2 and weight.shape[0] == 1:
        weight = weight[0]
    if weight.dim() != 2 or weight.shape[1] != embedding_dim:
        raise CheckpointError(
            f"{where}: weight shape {tuple(state['weight'].shape)} "
            f"does not fit {embedding_dim}-d embeddings"
        )
    return weight


def load_speechbrain(storage: Storage, filename: str) -> LoadedModel:
    """The SpeechBrain ECAPA ``filename`` in ``storage`` and what lies beside it."""
    where = storage.uri(filename)
    raw = read_state_dict(storage, filename)
    try:
        state = convert_speechbrain_ecapa(raw)
    except KeyError as exc:
        raise CheckpointError(f"{where}: {exc.args[0]}") from exc
    hparams = _read_hparams(storage)
    input_dim, channels, embedding_dim, options = ecapa_options_from_state(state, where)
    try:
        front_end = front_end_from_hparams(hparams, input_dim, storage.uri(SB_HPARAMS))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    declared = (hparams.get("embedding_model") or {}).get("input_size")  # int or "!ref <n_mels>"
    if isinstance(declared, int) and declared != input_dim:
        raise CheckpointError(
            f"{storage.uri(SB_HPARAMS)}: embedding_model.input_size = {declared} but "
            f"{filename} has {input_dim}-d input"
        )
    weight = _classifier_weight(storage, embedding_dim)
    speakers = _read_labels(storage)
    if weight is None:
        speakers = []
    elif speakers is None:
        speakers = [str(i) for i in range(weight.shape[0])]
    elif len(speakers) != weight.shape[0]:
        raise CheckpointError(
            f"{storage.uri(SB_LABELS)}: {len(speakers)} labels "
            f"for {weight.shape[0]} classes in {SB_CLASSIFIER}"
        )
    cfg = ModelConfig(
        arch="ecapa_tdnn", channels=channels, embedding_dim=embedding_dim, head=SB_HEAD
    )
    classifier = build_classifier(cfg, input_dim, len(speakers), **options)
    load_state(classifier.embedder, state, where)
    if weight is not None:
        load_state(classifier.head, {"weight": weight}, storage.uri(SB_CLASSIFIER))
    name = posixpath.basename(storage.path()) or filename
    has_head = weight is not None
    return LoadedModel(
        classifier.eval(), cfg, speakers, input_dim, name, has_head, front_end, options
    )


@register_source
class SpeechBrainCheckpoint(ModelSource):
    """SpeechBrain's ECAPA-TDNN (``EcapaTdnn`` with the converted keys)."""

    name = "speechbrain"
    title = f"a SpeechBrain ECAPA {SB_EMBEDDING} or the folder holding one"

    def recognises(self, path: str) -> bool:
        return not path.endswith(".pt")

    def load(self, path: str, s3: S3Config) -> LoadedModel:
        if path.endswith(".ckpt"):
            folder, filename = _split(path)
            return load_speechbrain(Storage(folder, s3), filename)
        storage = Storage(path, s3)
        if not storage.exists(SB_EMBEDDING):
            raise FileNotFoundError(f"{storage.uri()}: no SpeechBrain {SB_EMBEDDING}")
        return load_speechbrain(storage, SB_EMBEDDING)


def _split(path: str) -> tuple[str, str]:
    if "/" not in path:
        return ".", path
    folder, filename = path.rsplit("/", 1)
    return folder or "/", filename
