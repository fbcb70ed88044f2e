"""Reference inputs x' for the methods that compare an input with a baseline (IG, GradientShap,
DeepLift, Shapley sampling, Occlusion).

- ``ones``: every bin 1 (Zhang et al. 2023: "x' of the same type and size as x, but with all
  elements 1");
- ``zeros``: every bin 0 (silence after mean normalisation);
- ``mean``: the corpus mean feature vector per bin ``(F,)``, repeated over frames;
- ``gaussian``: random spectra with the utterance's per-bin mean and standard deviation (over
  frames), ``mu_f + sigma_f * z``. GradientShap samples from several such draws. ``z`` is the
  same for every item of a batch (drawn once, ``(draws, T, F)``), so an utterance's baselines do
  not depend on which utterances share its batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

BASELINE_KINDS: tuple[str, ...] = ("ones", "zeros", "mean", "gaussian")
#: seed of the generator used when none is given, so baselines are reproducible.
DEFAULT_SEED = 0


def default_generator(device: torch.device, seed: int = DEFAULT_SEED) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def make_baseline(
    kind: str,
    feats: Tensor,
    corpus_mean: Tensor | None = None,
    generator: torch.Generator | None = None,
    draws: int | None = None,
) -> Tensor:
    """Baselines for ``feats`` ``(B, T, F)``.

    Args:
        kind: ``ones``, ``zeros``, ``mean`` or ``gaussian`` (see the module docstring).
        corpus_mean: ``(F,)`` corpus mean feature vector; required for ``mean``.
        generator: random source for ``gaussian`` (default: seeded with ``DEFAULT_SEED``).
        draws: ``None`` for one baseline per item ``(B, T, F)``; an int for a distribution of
            baselines per item ``(B, K, T, F)`` as GradientShap takes it, with ``K = draws`` for
            ``gaussian`` and ``K = 1`` for the deterministic kinds.

    Returns:
        ``(B, T, F)`` or ``(B, K, T, F)``, on the device and in the dtype of ``feats``.
    """
    if feats.dim() != 3:
        raise ValueError(f"baseline: features must be (B, T, F), got shape {tuple(feats.shape)}")
    if draws is not None and draws < 1:
        raise ValueError(f"baseline: draws must be >= 1, got {draws}")
    if kind == "ones":
        base = torch.ones_like(feats)
    elif kind == "zeros":
        base = torch.zeros_like(feats)
    elif kind == "mean":
        base = _corpus_mean_baseline(feats, corpus_mean)
    elif kind == "gaussian":
        return _gaussian(feats, generator, draws)
    else:
        known = ", ".join(BASELINE_KINDS)
        raise ValueError(f"attribution.baseline: unknown kind {kind!r} (known: {known})")
    return base if draws is None else base.unsqueeze(1)


def _corpus_mean_baseline(feats: Tensor, corpus_mean: Tensor | None) -> Tensor:
    if corpus_mean is None:
        raise ValueError(
            "attribution.baseline 'mean' needs the corpus mean feature vector (F,): "
            "pass corpus_mean (or an explicit baseline)"
        )
    mean = torch.as_tensor(corpus_mean, dtype=feats.dtype, device=feats.device)
    if mean.shape != (feats.shape[2],):
        raise ValueError(
            f"baseline 'mean': corpus_mean must have shape ({feats.shape[2]},) to match the "
            f"features' bins, got {tuple(mean.shape)}"
        )
    return mean.expand_as(feats).clone()


def _gaussian(feats: Tensor, generator: torch.Generator | None, draws: int | None) -> Tensor:
    b, t, f = feats.shape
    gen = generator if generator is not None else default_generator(feats.device)
    z = torch.randn((draws or 1, t, f), generator=gen, device=feats.device, dtype=feats.dtype)
    mu = feats.mean(dim=1, keepdim=True)  # (B, 1, F)
    sigma = feats.std(dim=1, keepdim=True, unbiased=False)
    base = mu.unsqueeze(1) + sigma.unsqueeze(1) * z.unsqueeze(0)  # (B, K, T, F)
    return base.squeeze(1) if draws is None else base
