"""voxray's own model folders, ``models/<name>/``: written by the train stage (``save_model``),
read back by ``--model <folder>`` or the later stages.

The folder holds ``model.pt`` (the classifier's state_dict) and ``config.yaml`` (``format``,
``model`` = the ModelConfig, ``input_dim``, ``front_end`` = the input representation it was
trained on (``{name, params}``, see ``voxray.features.base``), ``options`` = extra constructor
arguments such as ECAPA's ``mfa_channels``, ``speakers`` in class-index order, ``extra``).
``config.yaml`` is written last, so a folder with one is complete.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

import torch
import yaml

from voxray.config import (
    ConfigError,
    FeatureConfig,
    ModelConfig,
    S3Config,
    from_dict,
    replace,
    to_dict,
)
from voxray.features import FrontEndSpec, kaldi_front_end
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.models.loaded import CheckpointError, LoadedModel, load_state, read_state_dict
from voxray.models.sources.base import ModelSource, register_source

FORMAT = "voxray-model/1"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"


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
    options = model.embedder.options()
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


def load_voxray(storage: Storage) -> LoadedModel:
    """The voxray model folder ``storage`` points at."""
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


@register_source
class VoxrayFolder(ModelSource):
    """A folder the train stage wrote (``config.yaml`` + ``model.pt``)."""

    name = "voxray"
    title = f"a voxray model folder ({CONFIG_FILE} + {MODEL_FILE}), local or s3://"

    def recognises(self, path: str) -> bool:
        return not path.endswith((".pt", ".ckpt"))

    def load(self, path: str, s3: S3Config) -> LoadedModel:
        storage = Storage(path, s3)
        if not storage.exists(CONFIG_FILE):
            where = storage.uri()
            raise FileNotFoundError(f"{where}: not a voxray model folder (no {CONFIG_FILE})")
        return load_voxray(storage)
