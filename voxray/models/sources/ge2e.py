"""Resemblyzer's GE2E encoder (``voxray.models.ge2e``): ``resemblyzer`` names the
``pretrained.pt`` of the installed wheel (located, not imported), or a path to such a ``.pt``
file. No classification head; its own ``ge2e_mel`` front-end.
"""

from __future__ import annotations

import posixpath

from voxray.config import S3Config
from voxray.features import FrontEndSpec
from voxray.features.ge2e_mel import Ge2eMel, Ge2eMelParams
from voxray.models.ge2e import ge2e_for_state, read_ge2e_state
from voxray.models.loaded import (
    CheckpointError,
    LoadedModel,
    load_state,
    read_weights,
)
from voxray.models.sources.base import WheelWeightsSource, register_source

#: ``--model`` value naming the weights shipped in PyPI's resemblyzer wheel.
RESEMBLYZER = "resemblyzer"
WEIGHTS_FILE = "pretrained.pt"


@register_source
class Ge2eSource(WheelWeightsSource):
    """Resemblyzer's GE2E LSTM d-vector encoder."""

    name = "ge2e"
    title = f"{RESEMBLYZER} (the wheel's {WEIGHTS_FILE}) or a path to a GE2E .pt"
    alias = RESEMBLYZER
    wheel = RESEMBLYZER
    weights_file = WEIGHTS_FILE
    install = f"pip install resemblyzer==0.1.4, or give the path to a GE2E {WEIGHTS_FILE}"

    def load(self, path: str, s3: S3Config) -> LoadedModel:
        storage, filename, where = self.locate(path, s3)
        try:
            state = read_ge2e_state(read_weights(storage, filename), where)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
        embedder = ge2e_for_state(state)
        load_state(embedder, state, where)
        front_end = FrontEndSpec(Ge2eMel.name, Ge2eMelParams())
        return self.loaded(embedder, path, posixpath.basename(storage.path()), front_end)
