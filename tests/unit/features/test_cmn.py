"""Per-utterance cepstral mean normalisation."""

from __future__ import annotations

import pytest
import torch

from voxray.features import apply_cmn


def test_cmn_gives_zero_mean_and_keeps_deviations() -> None:
    feats = torch.randn(50, 8) * 3.0 + torch.arange(8.0) * 10.0
    out = apply_cmn(feats)
    assert out.shape == feats.shape
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(8), rtol=0.0, atol=1e-5)
    torch.testing.assert_close(out[1:] - out[:-1], feats[1:] - feats[:-1], rtol=0.0, atol=1e-4)


def test_cmn_removes_a_channel_offset() -> None:
    feats = torch.randn(30, 4)
    torch.testing.assert_close(
        apply_cmn(feats + torch.tensor([5.0, -2.0, 0.5, 9.0])), apply_cmn(feats)
    )


def test_cmn_of_empty_and_bad_shape() -> None:
    assert apply_cmn(torch.zeros(0, 5)).shape == (0, 5)
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        apply_cmn(torch.zeros(5))
