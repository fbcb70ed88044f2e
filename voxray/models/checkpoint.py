"""Save and load speaker classifiers: voxray ``models/<name>/`` folders and SpeechBrain ECAPA.

A voxray model folder holds ``model.pt`` (the classifier's state_dict) and ``config.yaml``
(``format``, ``model`` = the ModelConfig, ``input_dim``, ``front_end`` = the input
representation it was trained on (``{name, params}``, see ``voxray.features.base``),
``options`` = extra constructor arguments such as ECAPA's ``mfa_channels``, ``speakers`` in
class-index order, ``extra``).
``config.yaml`` is written last, so a folder with one is complete.

A SpeechBrain model is an ``embedding_model.ckpt`` (or the folder holding one), optionally
with ``classifier.ckpt`` (its cosine classifier, loaded as an AAM head), ``label_encoder.txt``
(speaker names) and ``hyperparams.yaml`` beside it. Its architecture is read from the
tensors' shapes; hyperparams.yaml, when present, is checked for what shapes cannot show
(kernel sizes, dilations, groups, global context) and names the front-end
(``compute_features`` / ``mean_var_norm``, ``voxray.models.speechbrain_hparams``); without
one the front-end is the VoxCeleb recipe's: Fbank(n_mels=input size) + sentence mean norm.

A GE2E encoder is ``resemblyzer`` (the ``pretrained.pt`` of the installed wheel) or a path to
such a ``.pt`` file: ``voxray.models.ge2e``, with its own ``ge2e_mel`` front-end and no head.

Every ``torch.load`` is ``weights_only=True``: a pickle that would run code is refused.
"""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from voxray.config import (
    ConfigError,
    FeatureConfig,
    HeadConfig,
    ModelConfig,
    S3Config,
    from_dict,
    replace,
    to_dict,
)
from voxray.features import FrontEndSpec, kaldi_front_end
from voxray.features.ge2e_mel import Ge2eMel, Ge2eMelParams
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.models.ge2e import (
    RESEMBLYZER,
    ge2e_for_state,
    ge2e_storage,
    is_ge2e_path,
    read_ge2e_state,
)
from voxray.models.heads import MarginHead
from voxray.models.speechbrain_convert import convert_speechbrain_ecapa
from voxray.models.speechbrain_hparams import front_end_from_hparams, read_hparams

FORMAT = "voxray-model/1"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
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


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message names the file and the keys."""


@dataclass(frozen=True)
class LoadedModel:
    """A classifier ready for inference (eval mode, CPU) and what describes it.

    ``options`` are the extra constructor arguments: rebuild an identical, untrained model with
    ``build_classifier(cfg, input_dim, len(speakers), **options)``. ``front_end`` is the input
    representation the model was trained on (``voxray.features.base``).
    """

    classifier: SpeakerClassifier
    cfg: ModelConfig
    speakers: list[str]
    input_dim: int
    name: str
    has_head: bool
    front_end: FrontEndSpec
    options: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- saving


def save_model(
    storage: Storage,
    rel_dir: str,
    model: SpeakerClassifier,
    cfg: ModelConfig,
    speakers: list[str],
    input_dim: int,
    extra: dict[str, Any] | None = None,
    front_end: FrontEndSpec | None = None,
) -> None:
    """Write ``rel_dir/model.pt`` then ``rel_dir/config.yaml`` atomically through ``storage``.

    ``front_end`` is what the model was trained on; without one, ``default_front_end``.

    Raises:
        ValueError: ``speakers`` does not match the head, or ``extra`` is not plain YAML data.
    """
    if len(speakers) != model.num_classes:
        raise ValueError(f"{len(speakers)} speakers for a head of {model.num_classes} classes")
    options = {n: getattr(model.embedder, n) for n in getattr(model.embedder, "option_names", ())}
    try:
        text = yaml.safe_dump(
            {
                "format": FORMAT,
                "model": to_dict(cfg),
                "input_dim": int(input_dim),
                "front_end": (front_end or default_front_end(cfg, input_dim)).to_dict(),
                "options": options,
                "speakers": list(speakers),
                "extra": extra or {},
            },
            sort_keys=False,
        )
    except yaml.YAMLError as exc:
        where = posixpath.join(rel_dir, CONFIG_FILE)
        raise ValueError(f"extra for {where} is not plain YAML data: {exc}") from exc
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    storage.write_bytes(posixpath.join(rel_dir, MODEL_FILE), buf.getvalue())
    storage.write_text(posixpath.join(rel_dir, CONFIG_FILE), text)


def default_front_end(cfg: ModelConfig, input_dim: int) -> FrontEndSpec:
    """The base-configured Kaldi front-end of ``cfg.feature_kind`` with ``input_dim`` bins: what
    a voxray model written without a ``front_end`` (older config.yaml files) was trained on."""
    size = {"num_ceps" if cfg.feature_kind == "mfcc" else "num_mel_bins": input_dim}
    return kaldi_front_end(cfg.feature_kind, replace(FeatureConfig(), **size))


# --------------------------------------------------------------------------- loading


def load_model(path: str, s3: S3Config = S3Config()) -> LoadedModel:
    """A voxray model folder, a SpeechBrain ``embedding_model.ckpt`` or a folder holding one,
    or a GE2E encoder: ``resemblyzer`` (the installed wheel's weights) or a ``.pt`` file.

    Raises:
        FileNotFoundError: nothing loadable at ``path``.
        CheckpointError: a file that is unreadable, refused (code in the pickle), or does not
            match its configuration.
    """
    path = path.rstrip("/")
    if is_ge2e_path(path):
        return _load_ge2e(path, s3)
    if path.endswith(".ckpt"):
        folder, filename = _split(path)
        return _load_speechbrain(Storage(folder, s3), filename)
    storage = Storage(path, s3)
    if storage.exists(CONFIG_FILE):
        return _load_voxray(storage)
    if storage.exists(SB_EMBEDDING):
        return _load_speechbrain(storage, SB_EMBEDDING)
    raise FileNotFoundError(
        f"{path}: neither a voxray model folder ({CONFIG_FILE} + {MODEL_FILE}) "
        f"nor a SpeechBrain {SB_EMBEDDING}"
    )


def _split(path: str) -> tuple[str, str]:
    if "/" not in path:
        return ".", path
    folder, filename = path.rsplit("/", 1)
    return folder or "/", filename


def read_weights(storage: Storage, rel: str) -> Any:
    """``torch.load(weights_only=True)`` of one file: tensors and plain containers only."""
    uri = storage.uri(rel)
    if not storage.exists(rel):
        raise FileNotFoundError(f"{uri}: not found")
    try:
        data = io.BytesIO(storage.read_bytes(rel))
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure is a refused checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{uri}: refused or unreadable with weights_only=True: {first}"
        ) from exc


def read_state_dict(storage: Storage, rel: str) -> dict[str, Tensor]:
    """``read_weights`` of one file; anything but a tensor mapping is refused."""
    uri = storage.uri(rel)
    state = read_weights(storage, rel)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{uri}: expected a state_dict (a mapping of names to tensors)")
    return dict(state)


def load_state(module: nn.Module, state: dict[str, Tensor], where: str) -> None:
    """``load_state_dict(strict=True)``, with missing/unexpected keys and shape mismatches reported
    as a ``CheckpointError`` naming ``where`` and the first offending keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_first(shapes)}")
    if problems:
        raise CheckpointError(
            f"{where}: does not match {type(module).__name__}: " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)


def _first(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _load_voxray(storage: Storage) -> LoadedModel:
    where = storage.uri(CONFIG_FILE)
    try:
        meta = yaml.safe_load(storage.read_text(CONFIG_FILE))
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a voxray model config (format: {FORMAT} expected)")
    try:
        cfg = from_dict(ModelConfig, meta["model"])
        input_dim = int(meta["input_dim"])
        speakers = [str(s) for s in meta["speakers"]]
        options = dict(meta.get("options") or {})
        front_end = (
            FrontEndSpec.from_dict(meta["front_end"], where)
            if "front_end" in meta
            else default_front_end(cfg, input_dim)
        )
    except KeyError as exc:
        raise CheckpointError(f"{where}: missing key {exc.args[0]!r}") from exc
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: {exc}") from exc
    classifier = build_classifier(cfg, input_dim, len(speakers), **options)
    load_state(classifier, read_state_dict(storage, MODEL_FILE), storage.uri(MODEL_FILE))
    name = posixpath.basename(storage.path())
    return LoadedModel(
        classifier.eval(), cfg, speakers, input_dim, name, bool(speakers), front_end, options
    )


# --------------------------------------------------------------------------- SpeechBrain


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
            f"got keys {_first(sorted(state))}"
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


def _load_speechbrain(storage: Storage, filename: str) -> LoadedModel:
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


# --------------------------------------------------------------------------- GE2E (resemblyzer)


def _load_ge2e(path: str, s3: S3Config) -> LoadedModel:
    """Resemblyzer's GE2E encoder (no classification head) with its own mel front-end."""
    storage, filename = ge2e_storage(path, s3)
    where = storage.uri(filename)
    try:
        state = read_ge2e_state(read_weights(storage, filename), where)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    embedder = ge2e_for_state(state)
    load_state(embedder, state, where)
    cfg = ModelConfig(arch="ge2e", channels=embedder.channels, embedding_dim=embedder.embedding_dim)
    classifier = SpeakerClassifier(embedder, MarginHead(embedder.embedding_dim, 0, cfg.head))
    options = {n: getattr(embedder, n) for n in embedder.option_names}
    name = RESEMBLYZER if path == RESEMBLYZER else posixpath.basename(storage.path())
    front_end = FrontEndSpec(Ge2eMel.name, Ge2eMelParams())
    return LoadedModel(
        classifier.eval(), cfg, [], embedder.input_dim, name, False, front_end, options
    )
