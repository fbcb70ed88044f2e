"""The evaluation sections (verification scorers and the XAI analyses) and the report."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from voxray.config.resources import ResourceConfig
from voxray.config.validation import require_at_least, require_between


@dataclass(frozen=True)
class FaithfulnessConfig:
    enabled: bool = True
    methods: tuple[str, ...] = ()
    steps: int = 10
    max_utterances: int = 32
    flip_fractions: tuple[float, ...] = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)


@dataclass(frozen=True)
class MultiSpeakerConfig:
    enabled: bool = True
    trials_per_case: int = 20
    cases: tuple[str, ...] = ("A-B", "A-B-A", "B-A-B", "A-B-C")
    methods: tuple[str, ...] = ("grad_cam_pp", "score_cam", "layer_cam")
    #: the embedder's layers the CAMs read (empty: every convolutional layer).
    layers: tuple[str, ...] = ()
    segment_s: float = 2.0


@dataclass(frozen=True)
class SanityConfig:
    enabled: bool = True
    methods: tuple[str, ...] = ("saliency", "integrated_gradients", "layer_cam", "lrp_epsilon")
    max_utterances: int = 8
    #: a method whose maps keep a Spearman correlation above this after full randomisation is
    #: flagged.
    flag_threshold: float = 0.5
    label_randomisation: bool = True
    label_epochs: int = 2


@dataclass(frozen=True)
class GenderConfig:
    """Sarvaš 2021's gender experiment; the defaults are its protocol (§4.2-4.3), so every
    profile that runs it measures what the seed measured unless it says why not."""

    enabled: bool = True
    epochs: int = 5
    segment_s: float = 2.0
    top_fraction: float = 0.005
    #: learning rate of the AlexNet gender classifier and its retraining (Sarvaš 2021: 1e-4).
    lr: float = 1e-4
    #: what the trained classifier is trained again on: the Moore-augmented crops alone (Sarvaš
    #: 2021 §4.3: "the pre-trained model ... was then again trained on this augmented dataset")
    #: or the original crops and the augmented ones together.
    retrain_on: Literal["augmented", "original+augmented"] = "augmented"


#: the Quantus metrics voxray computes, by family (voxray.eval.xai_metrics).
XaiMetric = Literal[
    "FaithfulnessCorrelation",
    "ROAD",
    "IROF",
    "Monotonicity",
    "MaxSensitivity",
    "AvgSensitivity",
    "RelativeInputStability",
    "Sparseness",
    "Complexity",
    "MPRT",
    "RandomLogit",
    "Completeness",
    "InputInvariance",
]


#: the fewest FaithfulnessCorrelation subsets whose correlation is more than a few values.
MIN_CORRELATION_RUNS = 10


@dataclass(frozen=True)
class XaiMetricsConfig:
    """Quantus metric families for every method and pathway, on a sample of test utterances
    (fixed-length centre crops of ``train.segment_s``, so one batch holds them all)."""

    enabled: bool = True
    #: every metric of ``XaiMetric`` by default.
    metrics: tuple[XaiMetric, ...] = typing.get_args(XaiMetric)
    #: methods measured (empty: attribution.methods), each on its pathways below.
    methods: tuple[str, ...] = ()
    #: traversal / classification for the Captum methods (CAMs and LRP measure their own),
    #: trial for the trial methods.
    pathways: tuple[Literal["traversal", "classification", "trial"], ...] = (
        "traversal",
        "classification",
        "trial",
    )
    max_utterances: int = 8
    #: perturbed copies per input of the sensitivity / stability metrics.
    samples: int = 10
    #: FaithfulnessCorrelation's random subsets per input: the Pearson correlation is over these
    #: (2-3 gave +-1 and +-0.33 only).
    correlation_runs: int = 100
    #: score a random and an inverted map beside the real one (xai_metrics.MAP_KINDS) and leave
    #: out of the ranking a metric that cannot tell the real map from the random one.
    meta_evaluation: bool = True
    #: the share of the T x F bins one FaithfulnessCorrelation subset / Monotonicity step holds.
    subset_fraction: float = 0.05
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=1))

    def __post_init__(self) -> None:
        require_at_least("max_utterances", self.max_utterances, 2)
        require_at_least("samples", self.samples, 1)
        require_at_least(
            "eval.xai.correlation_runs",
            self.correlation_runs,
            MIN_CORRELATION_RUNS,
            " (a correlation over fewer subsets takes a handful of values)",
        )
        if not 0.0 < self.subset_fraction <= 1.0:
            raise ValueError(f"subset_fraction must be in (0, 1], got {self.subset_fraction}")


#: the AHC linkages (scipy's methods) voxray.eval.clustering scores with: all, by default.
LINKAGES: tuple[str, ...] = (
    "single",
    "complete",
    "average",
    "weighted",
    "centroid",
    "median",
    "ward",
)


@dataclass(frozen=True)
class IntervalConfig:
    """The speaker bootstrap behind every reported interval (voxray.eval.intervals)."""

    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        require_between("eval.intervals.confidence", self.confidence, 0.0, 1.0)
        require_at_least("eval.intervals.resamples", self.resamples, 100)


@dataclass(frozen=True)
class EnrolmentConfig:
    """A head for a model without one (CAM++, GE2E): logits are the scaled cosines to each
    corpus speaker's mean embedding over its identification-test utterances (iden_split 3),
    so Top-1, the multi-speaker test and the CAMs have a target speaker."""

    enabled: bool = False
    #: enrolment utterances per speaker (centre crops of ``train.segment_s``).
    per_speaker: int = 4

    def __post_init__(self) -> None:
        require_at_least("eval.enrolment.per_speaker", self.per_speaker, 1)


@dataclass(frozen=True)
class EvalConfig:
    scorers: tuple[str, ...] = ("cosine", "mean_cossim", "mean_dot", "ahc", "dominant_sets")
    linkages: tuple[str, ...] = LINKAGES
    p_targets: tuple[float, ...] = (0.01, 0.05)
    asnorm: bool = False
    asnorm_cohort: int = 200
    asnorm_top_k: int = 100
    identification: bool = True
    enrolment: EnrolmentConfig = field(default_factory=EnrolmentConfig)
    faithfulness: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    multispeaker: MultiSpeakerConfig = field(default_factory=MultiSpeakerConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)
    gender: GenderConfig = field(default_factory=GenderConfig)
    xai: XaiMetricsConfig = field(default_factory=XaiMetricsConfig)
    intervals: IntervalConfig = field(default_factory=IntervalConfig)


@dataclass(frozen=True)
class VerdictConfig:
    """The tolerances the seeds' claims are judged with (voxray.report.verdicts)."""

    #: Zhang et al. 2023 (000): the masked-retrained EER is at most this factor above the clean
    #: EER of the base model (their Table 2: 4.21 / 3.48 = 1.21).
    retrain_eer_factor: float = 1.21

    def __post_init__(self) -> None:
        require_at_least("report.verdicts.retrain_eer_factor", self.retrain_eer_factor, 1)


@dataclass(frozen=True)
class ReportConfig:
    heatmap_utterances: int = 3
    tsne: bool = True
    max_points: int = 2000
    verdicts: VerdictConfig = field(default_factory=VerdictConfig)
