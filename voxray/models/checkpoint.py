"""Save and load speaker models: the entry points the pipeline imports.

Loading goes through the registered model sources (``voxray.models.sources``: voxray folders,
SpeechBrain ECAPA checkpoints, Resemblyzer's GE2E, 3D-Speaker's CAM++), each of which reads
weights with ``torch.load(weights_only=True)``; saving writes a voxray model folder.
"""

from __future__ import annotations

from voxray.models.loaded import Capabilities, CheckpointError, LoadedModel
from voxray.models.sources import load_model
from voxray.models.sources.folder import (
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    default_front_end,
    save_model,
)

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "MODEL_FILE",
    "Capabilities",
    "CheckpointError",
    "LoadedModel",
    "default_front_end",
    "load_model",
    "save_model",
]
