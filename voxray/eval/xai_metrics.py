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

None of these outputs is a probability, so every metric runs with Quantus's ``softmax=False``
(its default applies a softmax for ROAD, IROF and Monotonicity, which would score a quantity the
map never explained). Each metric's other Quantus arguments (``abs``, ``normalise``,
``perturb_baseline``, sample and subset counts) are set, and stated with their reasons, on its
class in ``voxray.eval.quantus_posed``. Completeness is ``RelativeCompleteness``: the error
relative to ``|f(x) - f(x')|`` against ``attribution.baseline`` (the baseline IG / DeepLift /
Occlusion explain against), not Quantus's exact equality. MPRT's correlation is on normalised
absolute maps, as Quantus defines it.

The wrapper's first module is a view of the model's first convolution, so Quantus's
InputInvariance can shift its bias (it needs a first layer with a bias, applied to the input
itself). Scores are kept per utterance; ``HIGHER_IS_BETTER`` orients them for ranking.

The meta-evaluation (``MAP_KINDS``, after MetaQuantus, Hedström et al. 2023) scores two control
maps beside the real one: ``random``, the real map's values permuted over its bins (same shape,
same values; a fresh permutation each time a metric re-explains), and ``inverted``, the real map
with its order reversed (``max + min - A`` per utterance: the same range, so Quantus's sign
checks still hold). A metric that cannot rank the real map above the random one cannot tell a
good map from a bad one on this model and data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor, nn

from voxray.attribution import attribute
from voxray.attribution.base import Pathway
from voxray.attribution.trial import attribute_trials
from voxray.config import AttributionConfig, XaiMetricsConfig
from voxray.eval.quantus_posed import POSED, Setting
from voxray.models.base import SpeakerClassifier

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
    "Completeness": False,  # RelativeCompleteness: an error
    "InputInvariance": True,
}
#: the maps each metric scores: the method's own and the meta-evaluation's two controls.
MAP_KINDS = ("real", "random", "inverted")
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
    name: str,
    cfg: XaiMetricsConfig,
    frames: int,
    bins: int,
    outputs: int,
    seed: int,
    baseline: str = "ones",
) -> Any:
    """The Quantus metric ``name`` posed for speaker models (``voxray.eval.quantus_posed``:
    each class states the arguments it sets), or None where it is not defined for a wrapper
    with ``outputs`` outputs (or, for Completeness, a ``baseline`` kind that is not one
    constant)."""
    if name not in POSED:
        raise KeyError(f"eval.xai.metrics: unknown metric {name!r} (known: {', '.join(FAMILIES)})")
    return POSED[name].build(Setting(cfg, frames, bins, outputs, seed, baseline))


def item_scores(values: Any, n: int) -> np.ndarray:
    """``(n,)`` per-item scores from what a Quantus metric returns: one number or bool per item,
    or a sequence per item (averaged); a dict (ROAD's accuracy per removed percentage, of one
    item) becomes its mean."""
    if isinstance(values, dict):
        values = [np.nanmean(np.asarray(list(values.values()), dtype=np.float64))]
    arr = np.asarray(values, dtype=np.float64).reshape(n, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN item stays NaN
        return np.nanmean(arr, axis=1)


def control_map(kind: str, maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The meta-evaluation's map of ``kind`` (see ``MAP_KINDS``) for ``maps`` ``(N, ...)``."""
    if kind == "real":
        return maps
    if kind == "inverted":  # the order reversed, the range kept (per item)
        axes = tuple(range(1, maps.ndim))
        return maps.max(axis=axes, keepdims=True) + maps.min(axis=axes, keepdims=True) - maps
    if kind == "random":
        return rng.permuted(maps.reshape(len(maps), -1), axis=1).reshape(maps.shape)
    raise ValueError(f"xai: unknown map kind {kind!r} (known: {', '.join(MAP_KINDS)})")


def control_explain(kind: str, explain_fn: ExplainFn, seed: int) -> ExplainFn:
    """``explain_fn`` followed by ``control_map(kind)``: a metric that re-explains perturbed
    inputs or a randomised model sees the same kind of map (a fresh permutation each call)."""
    if kind == "real":
        return explain_fn
    rng = np.random.default_rng(seed)

    def explain(**kwargs: Any) -> np.ndarray:
        return control_map(kind, explain_fn(**kwargs), rng)

    return explain


@dataclass(frozen=True)
class MetricResult:
    metric: str
    family: str
    #: which map was scored (``MAP_KINDS``).
    kind: str
    #: the score of each utterance of the sample (NaN where undefined for it).
    values: tuple[float, ...]
    #: why the metric has no value (not defined for the pathway), else "".
    note: str = ""

    @property
    def value(self) -> float:
        """The mean over the sample, NaN-aware."""
        arr = np.asarray(self.values, dtype=np.float64)
        return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def measure(
    wrapper: ExplainedModel,
    feats: Tensor,
    cfg: XaiMetricsConfig,
    explain_fn: ExplainFn,
    explain_kwargs: dict[str, Any],
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    baseline: str = "ones",
    kinds: Sequence[str] | None = None,
) -> list[MetricResult]:
    """Every configured metric for one method on ``feats`` ``(N, T, F)`` (equal lengths), for
    each map kind (``MAP_KINDS`` when ``cfg.meta_evaluation``, else the real map only).

    ``explain_fn`` is called as Quantus calls it (voxray_explain for voxray's methods); the maps
    of the unperturbed inputs are computed once and shared by the metrics. NumPy's global
    random state, which Quantus draws from, is seeded before each metric, so the three kinds
    see the same perturbations. ``baseline`` is Completeness's ``x'`` (``attribution.baseline``).
    """
    wrapper = wrapper.eval()
    x = feats.detach().float()
    y = targets(wrapper, x).cpu().numpy()
    xb = x[:, None].cpu().numpy()
    real = explain_fn(model=wrapper, inputs=xb, targets=y, **explain_kwargs)
    frames, bins = x.shape[1:]
    kinds = kinds or (MAP_KINDS if cfg.meta_evaluation else ("real",))
    out = []
    for name in metrics or cfg.metrics:
        metric = build_metric(name, cfg, frames, bins, wrapper.num_outputs, seed, baseline)
        if name == "InputInvariance" and not hasattr(wrapper, "first"):
            metric = None
        for kind in kinds:
            if metric is None:
                nan = (float("nan"),) * len(xb)
                out.append(MetricResult(name, FAMILIES[name], kind, nan, "not defined here"))
                continue
            a = control_map(kind, real, np.random.default_rng(seed))
            explain = control_explain(kind, explain_fn, seed)
            values = _run(metric, wrapper, xb, y, a, explain, explain_kwargs, seed, name == "ROAD")
            out.append(MetricResult(name, FAMILIES[name], kind, tuple(values.tolist())))
    return out


def _run(
    metric: Any,
    wrapper: ExplainedModel,
    xb: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    explain: ExplainFn,
    explain_kwargs: dict[str, Any],
    seed: int,
    per_item: bool,
) -> np.ndarray:
    """``(N,)`` scores of one Quantus metric, logits in (``softmax=False``: no output of
    ``ExplainedModel`` is a probability); ``per_item`` runs it item by item (ROAD aggregates
    over its batch)."""
    device = str(next(wrapper.parameters()).device)
    parts = [slice(i, i + 1) for i in range(len(xb))] if per_item else [slice(None)]
    scores = []
    for rows in parts:
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = metric(
                model=wrapper,
                x_batch=xb[rows],
                y_batch=y[rows],
                a_batch=a[rows].copy(),
                channel_first=True,
                explain_func=explain,
                explain_func_kwargs=dict(explain_kwargs),
                device=device,
                softmax=False,
                batch_size=len(xb),
            )
        scores.append(item_scores(values, len(xb[rows])))
    return np.concatenate(scores)


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
