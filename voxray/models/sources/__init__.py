"""Where a ``--model`` value's model comes from: one module per source, registered in import
order, the order ``load_model`` asks them (``base.py`` has the contract). The ``.pt`` sources
(CAM++, GE2E) check the tensors they read; a folder is voxray's when it holds a config.yaml
(asked before SpeechBrain's embedding_model.ckpt).
"""

from __future__ import annotations

from voxray.models.sources import campplus, folder, ge2e, speechbrain  # noqa: F401
from voxray.models.sources.base import SOURCES, ModelSource, load_model, register_source

__all__ = ["SOURCES", "ModelSource", "load_model", "register_source"]
