"""MarginHead against hand-computed logits and losses (2-D embeddings at known angles)."""

from __future__ import annotations

import math

import pytest
import torch

from voxray.config import HeadConfig
from voxray.models.heads import MarginHead, target_cosine

S = 30.0
DEG = math.pi / 180.0


def _head(cfg: HeadConfig) -> MarginHead:
    """Two classes in 2-D: class 0 along +x, class 1 along +y (weights of different norms)."""
    head = MarginHead(2, 2, cfg)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))
    return head


def _at(deg: float, norm: float = 3.0) -> list[float]:
    return [norm * math.cos(deg * DEG), norm * math.sin(deg * DEG)]


def _ce(target: float, other: float) -> float:
    """-log softmax of the target among two logits, by hand."""
    return -target + math.log(math.exp(target) + math.exp(other))


# An embedding at 60 degrees: theta_0 = 60 deg, theta_1 = 30 deg; label 0.
# A second one at 10 degrees: theta_0 = 10 deg, theta_1 = 80 deg; label 1.
CASES = [
    ("aam", HeadConfig(kind="aam", margin=0.2, scale=S), lambda t: math.cos(t + 0.2)),
    ("am", HeadConfig(kind="am", margin=0.35, scale=S), lambda t: math.cos(t) - 0.35),
    ("sphere_m2", HeadConfig(kind="sphere", margin=2.0, scale=S), lambda t: _sphere(2.0 * t)),
    (
        "combined",
        HeadConfig(kind="combined", m1=1.2, m2=0.1, m3=0.05, scale=S),
        lambda t: math.cos(1.2 * t + 0.1) - 0.05,
    ),
]


def _sphere(phi: float) -> float:
    k = math.floor(phi / math.pi)
    return (-1) ** k * math.cos(phi) - 2 * k


@pytest.mark.parametrize(
    ("cfg", "psi"), [(c, p) for _, c, p in CASES], ids=[i for i, _, _ in CASES]
)
def test_angular_loss_matches_hand_computation(cfg: HeadConfig, psi) -> None:
    head = _head(cfg)
    emb = torch.tensor([_at(60.0), _at(10.0)], dtype=torch.float64)
    head = head.double()
    labels = torch.tensor([0, 1])
    # row 0: target class 0 at 60 deg, other class 1 at 30 deg
    row0 = _ce(S * psi(60 * DEG), S * math.cos(30 * DEG))
    # row 1: target class 1 at 80 deg, other class 0 at 10 deg
    row1 = _ce(S * psi(80 * DEG), S * math.cos(10 * DEG))
    assert head.loss(emb, labels).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    logits = head(emb)
    expected = torch.tensor(
        [[math.cos(60 * DEG), math.cos(30 * DEG)], [math.cos(10 * DEG), math.cos(80 * DEG)]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(logits, S * expected, rtol=1e-6, atol=1e-6)


def test_softmax_head_is_affine_with_bias() -> None:
    head = MarginHead(2, 2, HeadConfig(kind="softmax"))
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
        head.bias.copy_(torch.tensor([0.1, -0.2]))
    emb = torch.tensor([[2.0, 1.0]])
    # W x + b = [2 - 1 + 0.1, 1 + 2 - 0.2] = [1.1, 2.8]
    torch.testing.assert_close(head(emb), torch.tensor([[1.1, 2.8]]))
    assert head.loss(emb, torch.tensor([0])).item() == pytest.approx(_ce(1.1, 2.8), rel=1e-6)


def test_sphere_margin_beyond_pi_uses_monotone_extension() -> None:
    """m1 = 4 at 60 degrees: phi = 240 deg, k = 1, psi = -cos(240 deg) - 2 = -1.5."""
    head = _head(HeadConfig(kind="sphere", margin=4.0, scale=S)).double()
    emb = torch.tensor([_at(60.0)], dtype=torch.float64)
    expected = _ce(S * -1.5, S * math.cos(30 * DEG))
    assert head.loss(emb, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_arcface_wraps_past_pi_the_standard_way() -> None:
    """theta = 170 deg, m = 0.2 rad: theta + m > pi, so the target is cos(theta) - m sin(m)."""
    m = 0.2
    head = _head(HeadConfig(kind="aam", margin=m, scale=S)).double()
    emb = torch.tensor([_at(170.0)], dtype=torch.float64)  # theta_1 = 80 deg
    target = math.cos(170 * DEG) - m * math.sin(m)
    expected = _ce(S * target, S * math.cos(80 * DEG))
    assert head.loss(emb, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "margins",
    [(1.0, 0.2, 0.0), (1.0, 0.5, 0.0), (1.0, 0.0, 0.35), (4.0, 0.0, 0.0), (1.35, 0.2, 0.1)],
    ids=["aam0.2", "aam0.5", "am", "sphere4", "combined"],
)
def test_target_cosine_never_increases_with_the_angle(margins: tuple[float, float, float]) -> None:
    theta = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    psi = target_cosine(torch.cos(theta), *margins)
    assert torch.all(psi[1:] - psi[:-1] <= 1e-9)


@pytest.mark.parametrize("kind", ["aam", "am", "sphere", "combined"], ids=lambda k: k)
def test_gradients_finite_when_embedding_is_on_a_class_centre(kind: str) -> None:
    cfg = HeadConfig(kind=kind, margin=2.0 if kind == "sphere" else 0.2, m1=1.1, m2=0.1, m3=0.1)
    head = _head(cfg)
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], requires_grad=True)  # theta_0 = 0 and pi
    head.loss(emb, torch.tensor([0, 0])).backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


def test_gradients_finite_under_reduced_precision_autocast() -> None:
    head = _head(HeadConfig(kind="aam", margin=0.2))
    emb = torch.tensor([[1.0, 0.0], [0.0, 3.0]], requires_grad=True)  # exactly on the centres
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = head.loss(emb, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()


def test_margin_only_touches_the_target_logit() -> None:
    head = _head(HeadConfig(kind="am", margin=0.35, scale=S))
    emb = torch.tensor([_at(60.0)])
    with torch.no_grad():
        plain, marg = head(emb), head.margin_logits(emb, torch.tensor([1]))
    assert marg[0, 0].item() == pytest.approx(plain[0, 0].item())
    assert marg[0, 1].item() == pytest.approx(plain[0, 1].item() - S * 0.35, abs=1e-4)


def test_head_attributes_and_bad_config() -> None:
    head = MarginHead(16, 7, HeadConfig())
    assert head.num_classes == 7 and head(torch.randn(3, 16)).shape == (3, 7)
    assert head.bias is None
    with pytest.raises(ValueError, match="head.margin"):
        MarginHead(16, 7, HeadConfig(kind="sphere", margin=0.2))
