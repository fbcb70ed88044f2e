"""The base of the stage actors that run a model (attribute, embed, trial, embed from audio).

A Ray Data ``map_batches`` callable is built once per actor and then called per batch, so
the model is loaded in the constructor: once per actor, not per batch. Each stage's actor
subclasses ``ModelActor`` and keeps only what differs (its inputs and its ``__call__``).
"""

from __future__ import annotations

from voxray.models.checkpoint import load_model
from voxray.pipeline.model_ref import ModelRef
from voxray.pipeline.ray_env import torch_device
from voxray.pipeline.shape_cache import limit_shape_cache


class ModelActor:
    """Loads ``model`` onto the actor's device (a GPU when ``num_gpus``), in eval mode, with
    what describes it: its name for the output rows, its input size and its front-end."""

    def __init__(self, model: ModelRef, num_gpus: float, s3: object) -> None:
        limit_shape_cache()  # every utterance length is a new shape (see shape_cache.py)
        self.device = torch_device(num_gpus)
        self.loaded = load_model(model.path, s3)
        self.model = self.loaded.classifier.to(self.device).eval()
        self.model_name = model.name
        self.input_dim = self.loaded.input_dim
        self.front_end = self.loaded.front_end
