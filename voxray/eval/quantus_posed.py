"""Quantus metrics posed for speaker models: each class states the Quantus arguments it sets.

A Quantus metric's defaults are an image classifier's: a softmax over class logits, a black
baseline for a photograph, 224-pixel subsets. voxray's inputs are spectrograms ``(N, 1, T, F)``
and its outputs (``voxray.eval.xai_metrics.ExplainedModel``) a margin-free logit, a mean
embedding or a cosine score, none a probability. So every class here sets each argument that
decides what it measures explicitly, default or not, and ``ARGS`` says why (``softmax`` is
an argument of the call, not of the class: ``xai_metrics._run`` passes ``softmax=False`` to
all). ``LIMITS`` says what Quantus cannot express for that metric, where there is something.

Two readings recur. ``normalise`` (Quantus's ``normalise_by_max``, a positive scale per map)
changes nothing a metric computes from the map's order or a correlation, so where Quantus
turns it on it is kept. ``perturb_baseline="black"`` is the utterance's minimum feature value
(Quantus's ``arr.min()``): on a log-mel spectrogram the quietest energy in the utterance, so
replacing a bin with it removes that bin's energy, which is what deleting speech from a
spectrogram means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import quantus

from voxray.config import XaiMetricsConfig
from voxray.config.evaluation import MIN_CORRELATION_RUNS

# Quantus 0.6 integrates curves with np.trapz, which NumPy 2.4 removed (its successor is
# np.trapezoid, the same function): restore the old name for it.
if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid  # type: ignore[attr-defined]

#: ROAD's removal percentages (MoRF order).
ROAD_PERCENTAGES = (10, 30, 50, 70, 90)
#: Quantus's ``perturb_baseline`` for voxray's constant baselines (``attribution.baseline``);
#: ``mean`` (the corpus mean per bin) and ``gaussian`` (per-utterance draws) are not one value.
QUANTUS_BASELINE: dict[str, float] = {"ones": 1.0, "zeros": 0.0}
#: the switches every metric gets (no progress bars, one score per item).
COMMON = {"disable_warnings": True, "display_progressbar": False, "return_aggregate": False}
#: the reason shared by every class for the call's ``softmax=False``.
NO_SOFTMAX = "the explained output is a logit, an embedding mean or a cosine, not a probability"
#: the reason for keeping Quantus's ``normalise=True`` where the score is order- or
#: correlation-based.
SCALE_FREE = "kept (Quantus's default): a positive scale per map changes nothing this scores"


@dataclass(frozen=True)
class Setting:
    """What a metric's arguments depend on: the config, the spectrogram's size, the number
    of outputs, the seed and ``attribution.baseline``."""

    cfg: XaiMetricsConfig
    frames: int
    bins: int
    outputs: int
    seed: int
    baseline: str = "ones"

    @property
    def subset(self) -> int:
        """``cfg.subset_fraction`` of the spectrogram's bins (at least one)."""
        return max(1, round(self.cfg.subset_fraction * self.frames * self.bins))


class Posed:
    """A Quantus metric with its arguments stated: ``ARGS`` maps each argument ``arguments``
    sets (and the call's ``softmax``) to why; ``LIMITS``, what Quantus cannot express."""

    ARGS: ClassVar[dict[str, str]]
    LIMITS: ClassVar[str] = ""

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any] | None:
        """The Quantus arguments for ``s``, or None where the metric is not defined."""
        raise NotImplementedError

    @classmethod
    def build(cls, s: Setting) -> Any:
        args = cls.arguments(s)
        return None if args is None else cls(**args, **COMMON)


class FaithfulnessCorrelation(Posed, quantus.FaithfulnessCorrelation):
    """Pearson correlation, over random bin subsets, of the map's sum on the subset with the
    output's drop when the subset is removed (Bhatt et al. 2020)."""

    ARGS = {
        "nr_runs": "eval.xai.correlation_runs subsets (config refuses fewer than "
        f"{MIN_CORRELATION_RUNS}: a correlation over 2-3 subsets takes a handful of values)",
        "subset_size": "eval.xai.subset_fraction of T x F bins (Quantus's 224 counts pixels "
        "of a 224 x 224 image, not a spectrogram's bins)",
        "perturb_baseline": "black, the utterance's quietest energy: removing a bin's energy",
        "abs": "False: the signed sum is what should track the signed output drop",
        "normalise": SCALE_FREE + " (a Pearson correlation)",
        "softmax": NO_SOFTMAX,
    }
    LIMITS = (
        "Quantus draws single bins uniformly; time-frequency patches (a phone, a formant "
        "band) cannot be asked for."
    )

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {
            "nr_runs": s.cfg.correlation_runs,
            "subset_size": s.subset,
            "perturb_baseline": "black",
            "abs": False,
            "normalise": True,
        }


class ROAD(Posed, quantus.ROAD):
    """Whether the decision (predicted speaker, closest reference) survives removing the most
    relevant bins, imputed from their neighbours (Rong et al. 2022)."""

    ARGS = {
        "percentages": f"{ROAD_PERCENTAGES}: five points of the MoRF curve",
        "noise": "0.01, Quantus's default: the imputation's tie-breaking noise, small against "
        "a log-mel bin's spread",
        "abs": "False: bins are removed most-positive first, as the map ranks evidence",
        "normalise": SCALE_FREE + " (the removal order)",
        "softmax": NO_SOFTMAX + "; ROAD reads only the argmax, which a softmax does not move",
    }
    LIMITS = (
        "ROAD needs a decision among outputs: not defined for Traversal (one output). Its "
        "noisy linear imputation fills a bin from its 8 neighbours, adjacent frames and bands."
    )

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any] | None:
        if s.outputs < 2:
            return None
        return {
            "percentages": list(ROAD_PERCENTAGES),
            "noise": 0.01,
            "abs": False,
            "normalise": True,
        }


class IROF(Posed, quantus.IROF):
    """Area over the curve of the output as SLIC segments are removed, most relevant first
    (Rieger & Hansen 2020)."""

    ARGS = {
        "segmentation_method": "slic: segments of similar energy in time and frequency",
        "perturb_baseline": "mean, Quantus's default: a removed segment takes the utterance's "
        "mean level, so no segment boundary is drawn as silence",
        "abs": "False: segments are ranked by their signed mean relevance",
        "normalise": SCALE_FREE + " (the segments' order)",
        "softmax": NO_SOFTMAX,
    }
    LIMITS = (
        "Quantus scores each removal as f(x_perturbed) / f(x), a share of a positive "
        "probability; for a logit or cosine near zero or negative that ratio is unstable or "
        "flips sign, and Quantus has no argument for a difference instead."
    )

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {
            "segmentation_method": "slic",
            "perturb_baseline": "mean",
            "abs": False,
            "normalise": True,
        }


class Monotonicity(Posed, quantus.Monotonicity):
    """Whether adding bins back in order of relevance raises the output monotonically (Arya et
    al. 2019)."""

    ARGS = {
        "features_in_step": "the largest divisor of T x F up to eval.xai.subset_fraction of the "
        "bins (Quantus needs a step that divides the input)",
        "perturb_baseline": "black, the utterance's quietest energy: the start is the "
        "spectrogram with every bin's energy removed",
        "abs": "True, Quantus's default (Arya et al.): bins enter by magnitude of relevance",
        "normalise": SCALE_FREE + " (the order bins enter)",
        "softmax": NO_SOFTMAX,
    }

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        cells = s.frames * s.bins
        step = max(d for d in range(1, s.subset + 1) if cells % d == 0)
        return {
            "features_in_step": step,
            "perturb_baseline": "black",
            "abs": True,
            "normalise": True,
        }


class _Sensitivity(Posed):
    """The sensitivities' shared arguments (Yeh et al. 2019)."""

    ARGS = {
        "nr_samples": "eval.xai.samples noisy copies per utterance",
        "lower_bound": "0.2, Quantus's default: uniform noise of +-0.2 per bin, small against a "
        "log-mel bin's spread across repetitions of the same speech",
        "abs": "False: a sign change of the map is a change",
        "normalise": "False: the map's change is measured at its own scale",
        "softmax": NO_SOFTMAX,
    }

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {"nr_samples": s.cfg.samples, "lower_bound": 0.2, "abs": False, "normalise": False}


class MaxSensitivity(_Sensitivity, quantus.MaxSensitivity):
    """The largest relative change of the map under small input noise."""


class AvgSensitivity(_Sensitivity, quantus.AvgSensitivity):
    """The mean relative change of the map under small input noise."""


class RelativeInputStability(Posed, quantus.RelativeInputStability):
    """The map's relative change over the input's relative change (Agarwal et al. 2022)."""

    ARGS = {
        "nr_samples": "eval.xai.samples noisy copies per utterance",
        "return_nan_when_prediction_changes": "True, Quantus's default: stability is defined "
        "for copies with the same decision (speaker, closest reference)",
        "abs": "False: a sign change of the map is a change",
        "normalise": "False: the map's change is measured at its own scale",
        "softmax": NO_SOFTMAX,
    }

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {
            "nr_samples": s.cfg.samples,
            "return_nan_when_prediction_changes": True,
            "abs": False,
            "normalise": False,
        }


class _Concentration(Posed):
    """The complexity family's shared arguments: how concentrated ``|A|`` is."""

    ARGS = {
        "abs": "True, Quantus's default: concentration of the map's magnitude, either sign",
        "normalise": SCALE_FREE + " (a Gini index or an entropy of shares)",
        "softmax": "not used: the model is not called",
    }

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {"abs": True, "normalise": True}


class Sparseness(_Concentration, quantus.Sparseness):
    """The Gini index of ``|A|`` (Chalasani et al. 2020)."""


class Complexity(_Concentration, quantus.Complexity):
    """The entropy of ``|A|``'s shares (Bhatt et al. 2020)."""


class MPRT(Posed, quantus.MPRT):
    """The map's similarity after randomising the model's layers, top down (Adebayo et al.
    2018); the last layer's correlation is kept."""

    ARGS = {
        "seed": "the run's seed: the randomised weights repeat",
        "layer_order": "top_down, Quantus's default (Adebayo et al.'s cascade)",
        "skip_layers": "True: one comparison, the model's map against the fully randomised "
        "model's, instead of one per layer",
        "return_last_correlation": "True: the fully randomised model's similarity, one number",
        "abs": "True, as Quantus (Adebayo et al.) defines it",
        "normalise": SCALE_FREE + " (a Spearman correlation)",
        "softmax": NO_SOFTMAX,
    }

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {
            "seed": s.seed,
            "layer_order": "top_down",
            "skip_layers": True,
            "return_last_correlation": True,
            "abs": True,
            "normalise": True,
        }


class RandomLogit(Posed, quantus.RandomLogit):
    """The map's similarity to the map of another, random output (Sixt et al. 2020): another
    speaker, or another reference for a trial."""

    ARGS = {
        "num_classes": "the wrapper's outputs (speakers or references), not ImageNet's 1000",
        "seed": "the run's seed: the random output repeats",
        "abs": "False: a map and its opposite are different explanations",
        "normalise": "True, Quantus's default: SSIM compares the two maps on one scale",
        "softmax": NO_SOFTMAX,
    }
    LIMITS = "Not defined for Traversal, which has one output."

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any] | None:
        if s.outputs < 2:
            return None
        return {"num_classes": s.outputs, "seed": s.seed, "abs": False, "normalise": True}


class RelativeCompleteness(Posed, quantus.Completeness):
    """Completeness as the relative error ``|sum(A) - (f(x) - f(x'))| / |f(x) - f(x')|`` per item
    (NaN where ``f(x) = f(x')``), with ``x'`` filled by Quantus's ``perturb_baseline``.

    Quantus's Completeness returns ``sum(A) == f(x) - f(x')``, exact float equality, which no
    method meets; it has no tolerance argument, so this class keeps its baseline handling and
    returns the error instead (``voxray.attribution.captum_methods.completeness_error`` on
    Quantus's inputs).
    """

    ARGS = {
        "perturb_baseline": "attribution.baseline's constant, the x' the maps explain against "
        "(Quantus's black is not it)",
        "abs": "False: the signed sum is what must add up",
        "normalise": "False: the map's own scale is what must add up",
        "softmax": NO_SOFTMAX + "; the map explains the raw output",
    }
    LIMITS = (
        "Quantus has no tolerance, so the error is returned instead of a 0/1; a baseline that "
        "is not one constant (mean, gaussian) cannot be stated, and the metric is left out."
    )

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any] | None:
        fill = QUANTUS_BASELINE.get(s.baseline)
        if fill is None:
            return None
        return {"perturb_baseline": fill, "abs": False, "normalise": False}

    def evaluate_batch(
        self,
        model: Any,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **_: Any,
    ) -> np.ndarray:
        n = x_batch.shape[0]
        flat = x_batch.reshape(n, -1)
        every = np.tile(np.arange(flat.shape[1]), (n, 1))
        x_ref = self.perturb_func(arr=flat, indices=every).reshape(x_batch.shape)
        rows = np.arange(n)

        def out(x: np.ndarray) -> np.ndarray:
            shaped = model.shape_input(x, x_batch.shape, channel_first=True, batched=True)
            return model.predict(shaped)[rows, y_batch]

        delta = self.output_func(out(x_batch) - out(x_ref))
        gap = np.abs(a_batch.reshape(n, -1).sum(axis=1) - delta)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(delta != 0, gap / np.abs(delta), np.nan)


class InputInvariance(Posed, quantus.InputInvariance):
    """Whether the map stays when the input is shifted and the first layer's bias undoes the
    shift (Kindermans et al. 2017)."""

    ARGS = {
        "input_shift": "-1, Quantus's default: one unit of a log-mel bin, a level change the "
        "model cannot see once the bias compensates",
        "abs": "False: the signed map must stay",
        "normalise": "False: the map's own scale must stay",
        "softmax": NO_SOFTMAX,
    }
    LIMITS = "Needs a first convolution with a bias that reads the features (else left out)."

    @classmethod
    def arguments(cls, s: Setting) -> dict[str, Any]:
        return {"input_shift": -1, "abs": False, "normalise": False}


#: every metric voxray computes, by name.
POSED: dict[str, type[Posed]] = {
    "FaithfulnessCorrelation": FaithfulnessCorrelation,
    "ROAD": ROAD,
    "IROF": IROF,
    "Monotonicity": Monotonicity,
    "MaxSensitivity": MaxSensitivity,
    "AvgSensitivity": AvgSensitivity,
    "RelativeInputStability": RelativeInputStability,
    "Sparseness": Sparseness,
    "Complexity": Complexity,
    "MPRT": MPRT,
    "RandomLogit": RandomLogit,
    "Completeness": RelativeCompleteness,
    "InputInvariance": InputInvariance,
}
