"""Sanity checks for saliency maps (Adebayo et al. 2018, reference 29 of Zhang et al. 2023).

A map that explains the model must change when the model does:

- cascading model-parameter randomisation: re-initialise the parameters block by block from
  the head down to the input and recompute the maps after each block; a method whose maps
  stay similar to the trained model's after every block is randomised depends on the input
  only (an edge detector would pass as an "explanation");
- label randomisation: compare the maps of the model with those of the same architecture
  trained on shuffled labels (trained elsewhere; it is an argument here).

Similarity is Spearman rank correlation of |maps| (as Adebayo et al.) and of the signed
maps, and SSIM of |maps|, each averaged over the batch items.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from voxray.eval.similarity import spearman, ssim
from voxray.models.base import SpeakerClassifier, model_device

#: ``attribute_fn(model, feats (B, T, F)) -> maps (B, T, F)`` (a tensor or an array).
AttributeFn = Callable[[nn.Module, Tensor], Union[Tensor, npt.NDArray[np.floating]]]
Init = Literal["reset", "normal"]
#: the label of the unchanged model in a cascade.
ORIGINAL = "original"


@dataclass(frozen=True)
class MapSimilarity:
    """Mean similarity of two batches of maps."""

    spearman_abs: float
    spearman: float
    ssim: float


@dataclass(frozen=True)
class Cascade:
    """Similarity to the trained model's maps after each randomisation step.

    ``blocks[k]`` is the block randomised last at step k (``"original"`` at step 0, where the
    similarity is 1); ``similarity[k]`` compares the maps at step k with the originals.
    """

    blocks: tuple[str, ...]
    similarity: tuple[MapSimilarity, ...]

    @property
    def spearman_abs(self) -> npt.NDArray[np.float64]:
        return np.array([s.spearman_abs for s in self.similarity])

    @property
    def spearman(self) -> npt.NDArray[np.float64]:
        return np.array([s.spearman for s in self.similarity])

    @property
    def ssim(self) -> npt.NDArray[np.float64]:
        return np.array([s.ssim for s in self.similarity])

    @property
    def final(self) -> MapSimilarity:
        """After every block has been randomised."""
        return self.similarity[-1]


def _numpy_maps(
    maps: Tensor | npt.NDArray[np.floating], shape: tuple[int, ...], who: str
) -> npt.NDArray[np.float64]:
    if isinstance(maps, Tensor):
        maps = maps.detach().cpu().double().numpy()
    m = np.asarray(maps, dtype=np.float64)
    if m.shape != shape:
        raise ValueError(
            f"sanity check: attribute_fn returned maps of shape {m.shape} for {who}, "
            f"expected {shape}"
        )
    return m


def compare_maps(reference: npt.ArrayLike, maps: npt.ArrayLike) -> MapSimilarity:
    """Mean Spearman (of |maps| and signed) and SSIM (of |maps|) over items ``(B, T, F)``.

    Items where a map is constant give NaN Spearman and are left out of that mean (NaN when
    every item is)."""
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(maps, dtype=np.float64)
    if ref.shape != new.shape or ref.ndim != 3:
        raise ValueError(
            f"compare_maps: expected two (B, T, F) batches of one shape, got {ref.shape} "
            f"and {new.shape}"
        )

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return float(np.mean(finite)) if finite else float("nan")

    return MapSimilarity(
        spearman_abs=mean([spearman(np.abs(a), np.abs(b)) for a, b in zip(ref, new, strict=True)]),
        spearman=mean([spearman(a, b) for a, b in zip(ref, new, strict=True)]),
        ssim=mean([ssim(np.abs(a), np.abs(b)) for a, b in zip(ref, new, strict=True)]),
    )


def randomisation_blocks(model: SpeakerClassifier) -> list[tuple[str, list[nn.Module]]]:
    """The cascade's blocks, from the output to the input: the head, then the embedder's
    ``layers()`` in reverse, then (as ``"rest"``) every module with parameters left over
    (e.g. a stem convolution that ``layers()`` does not name). Parameter-free layers
    (pooling without weights) are skipped: randomising them would change nothing."""
    named: list[tuple[str, nn.Module]] = [("head", model.head)]
    named += list(reversed(list(model.embedder.layers().items())))
    seen: set[int] = set()
    blocks: list[tuple[str, list[nn.Module]]] = []
    for name, module in named:
        owners = [m for m in module.modules() if _own_params(m) and id(m) not in seen]
        seen.update(id(m) for m in owners)
        if owners:
            blocks.append((name, owners))
    rest = [m for m in model.modules() if _own_params(m) and id(m) not in seen]
    if rest:
        blocks.append(("rest", rest))
    return blocks


def _own_params(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters(recurse=False))


def randomise_modules(modules: Sequence[nn.Module], init: Init = "reset") -> None:
    """Re-initialise the parameters each module owns, in place; BatchNorm running statistics
    are reset too. ``reset``: the module's ``reset_parameters`` where it has one (its own
    initialisation, as Adebayo et al.), else Gaussian noise; ``normal``: Gaussian noise with
    each tensor's own standard deviation (1 where that is 0), keeping its scale, not its values."""
    with torch.no_grad():
        for m in modules:
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
            if init == "reset" and callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
                continue
            for p in _own_params(m):
                std = float(p.std()) if p.numel() > 1 else 0.0
                p.normal_(0.0, std if std > 0 else 1.0)


def cascading_randomisation(
    model: SpeakerClassifier,
    feats: Tensor,
    attribute_fn: AttributeFn,
    blocks: Sequence[tuple[str, Sequence[nn.Module]]] | None = None,
    init: Init = "reset",
    seed: int = 0,
) -> Cascade:
    """Maps ``attribute_fn(model, feats)`` ``(B, T, F)`` of ever more randomised copies of
    ``model``, compared with the trained model's maps.

    Step k deep-copies step k-1's model and re-initialises block k (``blocks`` default:
    ``randomisation_blocks(model)``, head first); ``model`` itself is never changed. Random
    draws come from ``seed + k`` without touching the global random state.
    """
    if init not in ("reset", "normal"):
        raise ValueError(f"cascading_randomisation: unknown init {init!r} (reset, normal)")
    blocks = randomisation_blocks(model) if blocks is None else blocks
    index = {id(m): name for name, m in model.named_modules()}
    device = model_device(model)
    cuda = [device.index or 0] if device.type == "cuda" else []
    shape = tuple(feats.shape)
    reference = _numpy_maps(attribute_fn(model, feats), shape, "the trained model")
    names = [ORIGINAL]
    sims = [compare_maps(reference, reference)]
    current: nn.Module = model
    for k, (name, modules) in enumerate(blocks, start=1):
        paths = [index.get(id(m)) for m in modules]
        if any(p is None for p in paths):
            raise ValueError(
                f"cascading_randomisation: block {name!r} holds modules that are not part of "
                "the model"
            )
        current = copy.deepcopy(current)
        inside = dict(current.named_modules())
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed + k)
            randomise_modules([inside[p] for p in paths if p is not None], init)
        current.eval()
        maps = _numpy_maps(attribute_fn(current, feats), shape, f"block {name!r} randomised")
        names.append(name)
        sims.append(compare_maps(reference, maps))
    return Cascade(tuple(names), tuple(sims))


def label_randomisation(
    model: nn.Module, shuffled_model: nn.Module, feats: Tensor, attribute_fn: AttributeFn
) -> MapSimilarity:
    """Similarity of the maps of ``model`` and of a model of the same architecture trained on
    shuffled labels; a method that explains the learned mapping gives dissimilar maps."""
    shape = tuple(feats.shape)
    return compare_maps(
        _numpy_maps(attribute_fn(model, feats), shape, "the model"),
        _numpy_maps(attribute_fn(shuffled_model, feats), shape, "the shuffled-label model"),
    )


def flag_insensitive(curves: Mapping[str, Cascade], threshold: float) -> dict[str, bool]:
    """Per method: True when its maps keep a Spearman correlation (of |maps|) above
    ``threshold`` after full randomisation, i.e. they do not depend on the model."""
    return {method: bool(c.final.spearman_abs > threshold) for method, c in curves.items()}
