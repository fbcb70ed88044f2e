"""Resemblyzer's GE2E encoder (``voxray.models.ge2e``): ``resemblyzer`` names the
``pretrained.pt`` of the installed wheel (located, not imported), or a path to such a ``.pt``
file. No classification head; its own ``ge2e_mel`` front-end.
"""

from __future__ import annotations

import posixpath

from voxray.config import ModelConfig, S3Config
from voxray.features import FrontEndSpec
from voxray.features.ge2e_mel import Ge2eMel, Ge2eMelParams
from voxray.models.ge2e import ge2e_for_state, read_ge2e_state
from voxray.models.loaded import (
    CheckpointError,
    LoadedModel,
    headless_model,
    load_state,
    read_weights,
)
from voxray.models.sources.base import (
    ModelSource,
    installed_file,
    register_source,
    split_path,
)

#: ``--model`` value naming the weights shipped in PyPI's resemblyzer wheel.
RESEMBLYZER = "resemblyzer"
WEIGHTS_FILE = "pretrained.pt"


def resemblyzer_weights() -> str:
    """``pretrained.pt`` of the installed resemblyzer wheel.

    Raises:
        FileNotFoundError: not installed, with what to install.
    """
    try:
        return str(installed_file(RESEMBLYZER, WEIGHTS_FILE))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"--model {RESEMBLYZER}: {exc} (pip install resemblyzer==0.1.4, or give the path "
            f"to a GE2E {WEIGHTS_FILE})"
        ) from exc


@register_source
class Ge2eSource(ModelSource):
    """Resemblyzer's GE2E LSTM d-vector encoder."""

    name = "ge2e"
    title = f"{RESEMBLYZER} (the wheel's {WEIGHTS_FILE}) or a path to a GE2E .pt"

    def recognises(self, path: str) -> bool:
        return path == RESEMBLYZER or path.endswith(".pt")

    def named(self) -> dict[str, str]:
        try:
            return {RESEMBLYZER: resemblyzer_weights()}
        except FileNotFoundError:
            return {}

    def load(self, path: str, s3: S3Config) -> LoadedModel:
        file = resemblyzer_weights() if path == RESEMBLYZER else path
        storage, filename = split_path(file, s3)
        where = storage.uri(filename)
        try:
            state = read_ge2e_state(read_weights(storage, filename), where)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
        embedder = ge2e_for_state(state)
        load_state(embedder, state, where)
        cfg = ModelConfig(
            arch="ge2e", channels=embedder.channels, embedding_dim=embedder.embedding_dim
        )
        name = RESEMBLYZER if path == RESEMBLYZER else posixpath.basename(storage.path())
        return headless_model(embedder, cfg, name, FrontEndSpec(Ge2eMel.name, Ge2eMelParams()))
