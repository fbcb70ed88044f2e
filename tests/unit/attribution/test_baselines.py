"""Baselines: the all-ones x' of Zhang et al. 2023, zeros, the corpus mean, and seeded Gaussian
draws."""

from __future__ import annotations

import pytest
import torch

from voxray.attribution.baselines import make_baseline


@pytest.fixture
def feats() -> torch.Tensor:
    return torch.randn(3, 7, 5, dtype=torch.float64)


@pytest.mark.parametrize(("kind", "value"), [("ones", 1.0), ("zeros", 0.0)], ids=["ones", "zeros"])
def test_constant_baselines(feats: torch.Tensor, kind: str, value: float) -> None:
    base = make_baseline(kind, feats)
    assert base.shape == feats.shape and base.dtype == feats.dtype
    assert torch.all(base == value)
    assert make_baseline(kind, feats, draws=4).shape == (3, 1, 7, 5)


def test_mean_baseline_repeats_the_corpus_mean_over_frames(feats: torch.Tensor) -> None:
    mean = torch.arange(5, dtype=torch.float32)
    base = make_baseline("mean", feats, corpus_mean=mean)
    assert base.dtype == torch.float64
    for b in range(3):
        for t in range(7):
            assert base[b, t].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_mean_baseline_needs_a_matching_corpus_mean(feats: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="corpus_mean"):
        make_baseline("mean", feats)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        make_baseline("mean", feats, corpus_mean=torch.zeros(4))


def test_gaussian_draws_are_seeded_per_utterance_statistics(feats: torch.Tensor) -> None:
    dist = make_baseline("gaussian", feats, draws=2000)
    assert dist.shape == (3, 2000, 7, 5)
    again = make_baseline("gaussian", feats, draws=2000)
    assert torch.equal(dist, again)  # default generator is seeded
    other = make_baseline("gaussian", feats, generator=torch.Generator().manual_seed(7), draws=2000)
    assert not torch.equal(dist, other)
    # per bin: mean / std of the draws match the utterance's mean / std over frames
    mu = feats.mean(dim=1)  # (B, F)
    sigma = feats.std(dim=1, unbiased=False)
    torch.testing.assert_close(dist.mean(dim=(1, 2)), mu, atol=0.05 * sigma.max().item(), rtol=0)
    torch.testing.assert_close(dist.std(dim=(1, 2)), sigma, rtol=0.05, atol=0)


def test_gaussian_draws_of_an_item_do_not_depend_on_its_batch(feats: torch.Tensor) -> None:
    batch = make_baseline("gaussian", feats, draws=3)
    alone = make_baseline("gaussian", feats[1:2], draws=3)
    torch.testing.assert_close(batch[1:2], alone)
    assert make_baseline("gaussian", feats).shape == feats.shape


def test_unknown_kind_and_bad_shapes_are_rejected(feats: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown kind 'noise'"):
        make_baseline("noise", feats)
    with pytest.raises(ValueError, match=r"\(B, T, F\)"):
        make_baseline("ones", feats[0])
