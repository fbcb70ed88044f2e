"""Classification heads: plain softmax and the angular margin family of Lehmann & Stadelmann 2020
eq. 2.

All angular kinds are one formula with margins ``(m1, m2, m3)`` (Lehmann & Stadelmann 2020 eq. 2,
Deng et al.'s combined margin)::

    target logit  = s * (cos(m1 * theta_y + m2) - m3)
    other logits  = s * cos(theta_j)

    aam    (ArcFace)    m1 = 1,      m2 = margin, m3 = 0
    am     (CosFace)    m1 = 1,      m2 = 0,      m3 = margin
    sphere (SphereFace) m1 = margin, m2 = 0,      m3 = 0        (margin >= 1)
    combined            m1, m2, m3 from the config

``forward`` returns the margin-free logits (``s * cos`` or ``W x + b``): what attribution
explains and what accuracy is measured on. ``loss`` applies the margin to the target class only.

Past pi, ``cos(m1 * theta + m2)`` stops decreasing and the margin would *reward* a target at a
wide angle, so the target angle is kept monotone:

* additive only (m1 = 1), ArcFace's standard rule (InsightFace): where ``theta + m2 > pi``,
  i.e. ``cos(theta) <= cos(pi - m2)``, use ``cos(theta) - m2 * sin(m2)`` instead;
* multiplicative (m1 != 1), SphereFace's piecewise extension
  ``psi(phi) = (-1)^k cos(phi) - 2k`` with ``k = floor(phi / pi)``, ``phi = m1 * theta + m2``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voxray.config import HeadConfig

#: cos is clamped this far inside [-1, 1] before acos, whose gradient is infinite at +-1.
_COS_EPS = 1e-7


def margin_triple(cfg: HeadConfig) -> tuple[float, float, float]:
    """``(m1, m2, m3)`` for an angular head kind (see the module docstring)."""
    if cfg.kind == "aam":
        return 1.0, cfg.margin, 0.0
    if cfg.kind == "am":
        return 1.0, 0.0, cfg.margin
    if cfg.kind == "sphere":
        return cfg.margin, 0.0, 0.0
    if cfg.kind == "combined":
        return cfg.m1, cfg.m2, cfg.m3
    raise ValueError(f"head kind {cfg.kind!r} has no angular margin")


def target_cosine(cos: Tensor, m1: float, m2: float, m3: float) -> Tensor:
    """The margin-applied target cosine ``cos(m1 * theta + m2) - m3``, kept monotone in theta.

    Args:
        cos: ``(N,)`` cosines of the target angles.
    Returns:
        ``(N,)`` values to multiply by the scale s.
    """
    cos = cos.clamp(-1.0 + _COS_EPS, 1.0 - _COS_EPS)
    theta = torch.acos(cos)
    if m1 == 1.0:
        if m2 == 0.0:
            return cos - m3
        wrapped = cos - m2 * math.sin(m2)
        return torch.where(theta + m2 <= math.pi, torch.cos(theta + m2), wrapped) - m3
    phi = m1 * theta + m2
    k = torch.floor(phi / math.pi)
    sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
    return sign * torch.cos(phi) - 2.0 * k - m3


class MarginHead(nn.Module):
    """Speaker logits from an embedding: ``(B, D) -> (B, num_classes)``.

    ``weight`` is ``(num_classes, D)`` (the class centres for the angular kinds); ``bias`` exists
    only for ``softmax``.
    """

    def __init__(
        self, embedding_dim: int, num_classes: int, cfg: HeadConfig = HeadConfig()
    ) -> None:
        super().__init__()
        if cfg.kind not in ("softmax", "aam", "am", "sphere", "combined"):
            kinds = "softmax, aam, am, sphere, combined"
            raise ValueError(f"head.kind: unknown {cfg.kind!r} ({kinds})")
        if cfg.kind == "sphere" and cfg.margin < 1.0:
            raise ValueError(
                f"head.margin: a SphereFace margin multiplies the angle, it must be >= 1, "
                f"got {cfg.margin}"
            )
        if cfg.scale <= 0:
            raise ValueError(f"head.scale must be positive, got {cfg.scale}")
        self.kind = cfg.kind
        self.scale = float(cfg.scale)
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim
        self.margins = None if cfg.kind == "softmax" else margin_triple(cfg)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        if num_classes > 0:
            nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if cfg.kind == "softmax" else None

    def cosine(self, emb: Tensor) -> Tensor:
        """``(B, D) -> (B, num_classes)`` cosines between embeddings and class centres."""
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, emb: Tensor) -> Tensor:
        """Margin-free logits ``(B, num_classes)``: ``s * cos`` or ``W x + b`` (softmax)."""
        if self.bias is not None:
            return F.linear(emb, self.weight, self.bias)
        return self.scale * self.cosine(emb)

    def margin_logits(self, emb: Tensor, labels: Tensor) -> Tensor:
        """Logits with the margin applied to each row's target class (training).

        The margin is computed in float32 even under autocast: in half precision the clamp
        below 1 rounds back to 1 and acos's gradient there is infinite."""
        if self.margins is None:
            return self.forward(emb)
        cos = self.cosine(emb).float()
        rows = torch.arange(cos.shape[0], device=cos.device)
        target = target_cosine(cos[rows, labels], *self.margins)
        cos = cos.index_put((rows, labels), target)
        return self.scale * cos

    def loss(self, emb: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy of the margin logits; ``labels`` ``(B,)`` class indices."""
        return F.cross_entropy(self.margin_logits(emb, labels), labels)

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind}, embedding_dim={self.embedding_dim}, "
            f"num_classes={self.num_classes}, margins={self.margins}, scale={self.scale}"
        )
