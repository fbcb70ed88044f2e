"""Quantus metric families for every method and pathway, computed by the ``quantus`` package.

Quantus evaluates ``model(x)[:, y]`` for image classifiers: ``x`` is ``(N, C, H, W)`` and ``y`` a
class. A spectrogram is a one-channel image ``(N, 1, T, F)``; equal-length crops batch. What
the explained scalar is depends on the pathway, so ``ExplainedModel`` is a thin wrapper that
states it explicitly:

- classification / cam / lrp: the classifier's margin-free logits ``(N, K)``, ``y`` the
  predicted speaker (what those maps explain);
- traversal: the mean embedding ``(N, 1)`` (Zhang et al. 2023 eq. 5 with the fast identity), ``y =
  0``; there is no other output, so RandomLogit and ROAD (which needs a decision) are not defined;
- trial: ``cos(e(x), b_k)`` against a bank of K reference embeddings ``(N, K)``, ``y`` the
  reference each utterance is paired with (its most similar one). RandomLogit then explains
  the score against another reference, and ROAD asks whether the paired reference stays the
  closest.

The wrapper's first module is a view of the model's first convolution, so Quantus's
InputInvariance can shift its bias (it needs a first layer with a bias, applied to the input
itself). Where Quantus's semantics differ from voxray's own checks (Completeness tests exact
equality; MPRT's correlation is on normalised absolute maps) the metric is reported as Quantus
defines it. Scores are averaged over the sample; ``HIGHER_IS_BETTER`` orients them for ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import quantus
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor, nn

from voxray.attribution import attribute
from voxray.attribution.base import Pathway
from voxray.attribution.trial import attribute_trials
from voxray.config import AttributionConfig, XaiMetricsConfig
from voxray.models.base import SpeakerClassifier

# Quantus 0.6 integrates curves with np.trapz, which NumPy 2.4 removed (its successor is
# np.trapezoid, the same function): restore the old name for it.
if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid  # type: ignore[attr-defined]

#: the family of each metric (Hedström et al. 2023, Quantus's grouping).
FAMILIES: dict[str, str] = {
    "FaithfulnessCorrelation": "faithfulness",
    "ROAD": "faithfulness",
    "IROF": "faithfulness",
    "Monotonicity": "faithfulness",
    "MaxSensitivity": "robustness",
    "AvgSensitivity": "robustness",
    "RelativeInputStability": "robustness",
    "Sparseness": "complexity",
    "Complexity": "complexity",
    "MPRT": "randomisation",
    "RandomLogit": "randomisation",
    "Completeness": "axiomatic",
    "InputInvariance": "axiomatic",
}
#: whether a larger score means a better explanation (ROAD: accuracy kept while the most
#: relevant bins are removed; sensitivities, stability, entropy and the randomisation
#: similarities: lower is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "FaithfulnessCorrelation": True,
    "ROAD": False,
    "IROF": True,
    "Monotonicity": True,
    "MaxSensitivity": False,
    "AvgSensitivity": False,
    "RelativeInputStability": False,
    "Sparseness": True,
    "Complexity": False,
    "MPRT": False,
    "RandomLogit": False,
    "Completeness": True,
    "InputInvariance": True,
}
#: ROAD's removal percentages (MoRF order).
ROAD_PERCENTAGES = (10, 30, 50, 70, 90)
#: a map function as Quantus calls it: (model, inputs (N, 1, T, F), targets (N,)) -> (N, 1, T, F).
ExplainFn = Callable[..., np.ndarray]


class FirstLayer(nn.Module):
    """The model's first convolution seen on Quantus's ``(N, 1, T, F)`` layout, exposing the
    ``out_channels`` and ``bias`` that ``add_mean_shift_to_first_layer`` rewrites."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    @property
    def bias(self) -> Tensor | None:
        return self.conv.bias

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.conv, nn.Conv1d):
            return self.conv(x[:, 0].transpose(1, 2))  # (N, F, T), as a TDNN takes it
        return self.conv(x.transpose(2, 3))  # (N, 1, F, T), as a 2-D CNN takes it


def first_conv(model: nn.Module) -> nn.Conv1d | nn.Conv2d | None:
    """The first convolution of ``model`` with a bias that reads the features directly
    (a Conv1d over the bins or a one-channel Conv2d), else None."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            direct = isinstance(m, nn.Conv1d) or m.in_channels == 1
            return m if direct and m.bias is not None else None
    return None


class ExplainedModel(nn.Module):
    """``(N, 1, T, F) -> (N, K)``: the outputs of one pathway (see the module doc)."""

    def __init__(self, model: SpeakerClassifier, pathway: str, bank: Tensor | None = None) -> None:
        super().__init__()
        conv = first_conv(model.embedder)
        if conv is not None:
            self.first = FirstLayer(conv)  # registered first: Quantus shifts modules[1]
        self.model = model
        self.pathway = Pathway(pathway)
        if self.pathway == Pathway.TRIAL:
            if bank is None or bank.dim() != 2:
                raise ValueError("xai: the trial pathway needs a reference bank (K, D)")
            self.register_buffer("bank", bank.detach())
        self.eval()  # Quantus refuses a module in training mode

    @property
    def num_outputs(self) -> int:
        if self.pathway == Pathway.TRAVERSAL:
            return 1
        if self.pathway == Pathway.TRIAL:
            return int(self.bank.shape[0])
        return int(self.model.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        feats = x[:, 0]
        if self.pathway == Pathway.TRAVERSAL:
            return self.model.embedder(feats).mean(dim=1, keepdim=True)
        if self.pathway == Pathway.TRIAL:
            e = F.normalize(self.model.embedder(feats), dim=1)
            return e @ F.normalize(self.bank.to(e.dtype), dim=1).T
        return self.model(feats)

    def attribute(
        self, feats: Tensor, targets: Tensor, method: str, params: AttributionConfig
    ) -> Tensor:
        """voxray's maps ``(N, T, F)`` of the output ``targets`` selects."""
        if self.pathway == Pathway.TRIAL:
            return attribute_trials(self.model, feats, self.bank[targets], method, params).maps
        target = None if self.pathway == Pathway.TRAVERSAL else targets
        return attribute(self.model, feats, method, self.pathway, params=params, target=target).maps


def voxray_explain(
    model: ExplainedModel,
    inputs: np.ndarray,
    targets: np.ndarray,
    method: str,
    params: AttributionConfig,
    **_: Any,
) -> np.ndarray:
    """Quantus's ``explain_func``: ``method``'s maps ``(N, 1, T, F)`` on ``model`` (which may be
    a copy with randomised layers or a shifted first layer)."""
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)[:, 0]
    y = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).view(-1)
    maps = model.attribute(x, y, method, params)
    return maps.detach().float().cpu().numpy()[:, None]


def targets(wrapper: ExplainedModel, feats: Tensor) -> Tensor:
    """``(N,)`` the output each item explains: the argmax of the wrapper's outputs (the
    predicted speaker; the closest reference; 0 for Traversal)."""
    with torch.no_grad():
        return wrapper(feats[:, None]).argmax(dim=1)


def build_metric(
    name: str, cfg: XaiMetricsConfig, frames: int, bins: int, outputs: int, seed: int
) -> Any:
    """The Quantus metric ``name`` with voxray's settings, or None where it is not defined for
    a wrapper with ``outputs`` outputs."""
    common = {"disable_warnings": True, "display_progressbar": False, "return_aggregate": False}
    subset = max(1, round(cfg.subset_fraction * frames * bins))
    if name == "FaithfulnessCorrelation":
        return quantus.FaithfulnessCorrelation(nr_runs=cfg.samples, subset_size=subset, **common)
    if name == "ROAD":
        return None if outputs < 2 else quantus.ROAD(percentages=list(ROAD_PERCENTAGES), **common)
    if name == "IROF":
        return quantus.IROF(segmentation_method="slic", **common)
    if name == "Monotonicity":
        # Quantus wants a step that divides T x F: the largest one up to the configured share
        step = max(d for d in range(1, subset + 1) if (frames * bins) % d == 0)
        return quantus.Monotonicity(features_in_step=step, **common)
    if name == "MaxSensitivity":
        return quantus.MaxSensitivity(nr_samples=cfg.samples, **common)
    if name == "AvgSensitivity":
        return quantus.AvgSensitivity(nr_samples=cfg.samples, **common)
    if name == "RelativeInputStability":
        return quantus.RelativeInputStability(nr_samples=cfg.samples, **common)
    if name == "Sparseness":
        return quantus.Sparseness(**common)
    if name == "Complexity":
        return quantus.Complexity(**common)
    if name == "MPRT":
        return quantus.MPRT(seed=seed, skip_layers=True, return_last_correlation=True, **common)
    if name == "RandomLogit":
        return (
            None if outputs < 2 else quantus.RandomLogit(num_classes=outputs, seed=seed, **common)
        )
    if name == "Completeness":
        return quantus.Completeness(normalise=False, **common)
    if name == "InputInvariance":
        return quantus.InputInvariance(**common)
    raise KeyError(f"eval.xai.metrics: unknown metric {name!r} (known: {', '.join(FAMILIES)})")


def score(values: Any) -> float:
    """One number from a metric's per-item scores, NaN-aware; ROAD's accuracy per removed
    percentage (a dict) becomes the mean accuracy over the percentages."""
    if isinstance(values, dict):
        values = list(values.values())
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if arr.size and np.isfinite(arr).any() else float("nan")


@dataclass(frozen=True)
class MetricResult:
    metric: str
    family: str
    value: float
    #: why the metric has no value (not defined for the pathway), else "".
    note: str = ""


def measure(
    wrapper: ExplainedModel,
    feats: Tensor,
    cfg: XaiMetricsConfig,
    explain_fn: ExplainFn,
    explain_kwargs: dict[str, Any],
    seed: int = 0,
    metrics: Sequence[str] | None = None,
) -> list[MetricResult]:
    """Every configured metric for one method on ``feats`` ``(N, T, F)`` (equal lengths).

    ``explain_fn`` is called as Quantus calls it (voxray_explain for voxray's methods); the maps
    of the unperturbed inputs are computed once and shared by the metrics. NumPy's global
    random state, which Quantus draws from, is seeded before each metric.
    """
    wrapper = wrapper.eval()
    x = feats.detach().float()
    y = targets(wrapper, x).cpu().numpy()
    xb = x[:, None].cpu().numpy()
    a = explain_fn(model=wrapper, inputs=xb, targets=y, **explain_kwargs)
    device = str(next(wrapper.parameters()).device)
    # each metric's own default (probabilities for IROF, ROAD, Monotonicity, PixelFlipping; the
    # output itself for the others) where there are classes; one output is scored as it is
    softmax = {} if wrapper.num_outputs > 1 else {"softmax": False}
    out = []
    for name in metrics or cfg.metrics:
        frames, bins = x.shape[1:]
        metric = build_metric(name, cfg, frames, bins, wrapper.num_outputs, seed)
        if name == "InputInvariance" and not hasattr(wrapper, "first"):
            metric = None
        if metric is None:
            out.append(
                MetricResult(name, FAMILIES[name], float("nan"), "not defined for this pathway")
            )
            continue
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = metric(
                model=wrapper,
                x_batch=xb,
                y_batch=y,
                a_batch=a.copy(),
                channel_first=True,
                explain_func=explain_fn,
                explain_func_kwargs=dict(explain_kwargs),
                device=device,
                **softmax,
                batch_size=len(xb),
            )
        out.append(MetricResult(name, FAMILIES[name], score(values)))
    return out


def rank_methods(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean rank per method (1 = best) over the metrics, each oriented by HIGHER_IS_BETTER;
    ties share their average rank, and a NaN is left out of that metric's ranking.

    ``table`` maps method -> metric -> value."""
    ranks: dict[str, list[float]] = {m: [] for m in table}
    for metric in sorted({k for row in table.values() for k in row}):
        vals = {m: row[metric] for m, row in table.items() if np.isfinite(row.get(metric, np.nan))}
        if not vals:
            continue
        sign = -1.0 if HIGHER_IS_BETTER.get(metric, True) else 1.0
        for m, r in zip(vals, rankdata([sign * v for v in vals.values()]), strict=True):
            ranks[m].append(float(r))
    return {m: float(np.mean(r)) if r else float("nan") for m, r in ranks.items()}
