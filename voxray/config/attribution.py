"""The attribution, trial-explanation and mask sections."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from voxray.config.conditions import SEEN_CLASSIFICATION, ConditionName
from voxray.config.resources import ResourceConfig


@dataclass(frozen=True)
class AttributionConfig:
    methods: tuple[str, ...] = (
        "integrated_gradients",
        "gradient_shap",
        "deeplift",
        "saliency",
        "input_x_gradient",
        "shapley_sampling",
        "occlusion",
        "grad_cam_pp",
        "score_cam",
        "layer_cam",
        "lrp_0",
        "lrp_epsilon",
        "lrp_gamma",
    )
    #: pathways for the Captum methods (CAM and LRP explain the classification output).
    pathways: tuple[Literal["traversal", "classification"], ...] = ("traversal", "classification")
    #: which utterances: test (trial-list speakers), train, or all.
    subset: Literal["test", "train", "all"] = "test"
    max_utterances: int = 0
    #: explain only utterances of at most this many seconds (0: any length). A map's cost grows
    #: with the utterance's length (Occlusion's with its square): a bound keeps a corpus of
    #: long real recordings' attribute stage predictable; the mask conditions' maps are not
    #: bounded (every utterance needs one).
    max_seconds: float = 0.0
    #: the slow perturbation methods run on at most this many utterances.
    perturbation_max_utterances: int = 8
    baseline: Literal["ones", "zeros", "mean", "gaussian"] = "ones"
    ig_steps: int = 50
    shap_samples: int = 20
    shap_stdev: float = 0.0
    shapley_samples: int = 2
    patch_frames: int = 20
    patch_bins: int = 10
    occlusion_frames: int = 10
    occlusion_bins: int = 8
    cam_layers: tuple[str, ...] = ()
    cam_gamma: float = 5.0
    lrp_epsilon: float = 0.5
    lrp_gamma: float = 5.0
    traversal_mode: Literal["fast", "literal"] = "fast"
    #: the most rows (IG steps x utterances) one Captum call evaluates; each actor lowers it
    #: per utterance length to what fits in ``memory_fraction`` of the device memory free at
    #: its start, measured on its model (voxray.pipeline.batch_memory).
    internal_batch_size: int = 64
    memory_fraction: float = 0.5
    #: fp32, tf32 (CUDA matmuls) or bf16 autocast; bf16 maps stay within
    #: voxray.pipeline.precision.BF16_MAP_ERROR of fp32.
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    #: explanations as audio in audio/ (the original, the speech a map keeps and the speech it
    #: removes; voxray.mask.audio): report (the utterances the report shows as heat maps, each
    #: method's shown pathway), all (every explained utterance, method and pathway), none.
    audio: Literal["report", "all", "none"] = "report"
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=8))

    def __post_init__(self) -> None:
        if self.max_seconds < 0:
            raise ValueError(f"max_seconds must be >= 0 (0: any length), got {self.max_seconds}")
        if not 0.0 < self.memory_fraction <= 1.0:
            raise ValueError(f"memory_fraction must be in (0, 1], got {self.memory_fraction}")


#: the methods the trial pathway runs (linear gradient methods and Occlusion: their Captum
#: batches keep row r on item r mod B, which the fixed-embedding forward relies on).
TrialMethod = Literal[
    "integrated_gradients", "saliency", "input_x_gradient", "deeplift", "occlusion"
]


@dataclass(frozen=True)
class TrialConfig:
    """Trial explanations (the ``trial`` pathway): the attribution of ``s = cos(e_a, e_b)`` with
    respect to one side's features, the other side's embedding fixed. The method parameters
    (IG steps, baseline, occlusion window, precision) are ``attribution``'s."""

    enabled: bool = True
    methods: tuple[TrialMethod, ...] = (
        "integrated_gradients",
        "saliency",
        "input_x_gradient",
        "deeplift",
        "occlusion",
    )
    #: worst: the worst_k false accepts and worst_k false rejects at the EER threshold of the
    #: embeddings' cosine scores; sample: ``sample`` trials drawn with ``seed``; all: every trial.
    select: Literal["worst", "sample", "all"] = "worst"
    worst_k: int = 5
    sample: int = 32
    #: the trial lists drawn from (the list column of trials.parquet; empty: every list).
    lists: tuple[str, ...] = ()
    #: the side explained: a (utt_a's features, utt_b's embedding fixed), b (the reverse).
    sides: tuple[Literal["a", "b"], ...] = ("a", "b")
    #: the reference of the joint decomposition (both sides on one path, their maps summing to
    #: s(x_a, x_b) - s(x'_a, x'_b)), computed for each method of ``methods`` that has a joint
    #: path (``voxray.attribution.trial.JOINT_METHODS``): cohort_mean, the list's impostor
    #: trial (sharing no utterance with the explained one) whose score is nearest the mean
    #: impostor score, so the maps explain what lifts the trial above a typical impostor
    #: trial; none: no joint decomposition.
    joint_baseline: Literal["cohort_mean", "none"] = "cohort_mean"
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=8))

    def __post_init__(self) -> None:
        if self.worst_k < 1 or self.sample < 1:
            raise ValueError(f"worst_k and sample must be >= 1, got {self.worst_k}, {self.sample}")
        if not self.sides:
            raise ValueError("sides must name a or b")


@dataclass(frozen=True)
class MaskCondition:
    """One masked-data condition: which attribution, how it masks, at which threshold."""

    method: str = "integrated_gradients"
    #: the pathway for utterances of the speakers the model was trained on. Utterances of any
    #: other speaker are ALWAYS masked with their Traversal map. Traversal (the default) masks
    #: training and test data alike with a class-free map, as Zhang et al. 2023 ran one pathway
    #: over all the data it masked. Classification (named ``seen-classification``) is a variant:
    #: a training utterance's Classification map encodes the class it explains (a nearest
    #: centroid recovers it from the masked input), a code the test data (Traversal) lacks; the
    #: mask stage measures that leak.
    pathway: str = "traversal"
    #: product: attribution x input (Zhang et al. 2023); threshold: product with bins below tau
    #: zeroed; moore: top-p bins replaced by their Moore-neighbourhood mean (Sarvaš 2021).
    rule: Literal["product", "threshold", "moore"] = "product"
    threshold: float = 0.1
    #: how the threshold reads Zhang et al. 2023's "attribution values less than tau": signed (A /
    #: max A, negative evidence dropped) or magnitude (|A| / max|A|); see
    #: mask.rules.threshold_scores.
    reading: Literal["signed", "magnitude"] = "signed"
    top_fraction: float = 0.005
    #: own: the utterance's map; shuffled: the control, another utterance's map (of another
    #: speaker of the same seen/unseen group) keeping as many bins as the own map keeps.
    maps: Literal["own", "shuffled"] = "own"

    @property
    def parts(self) -> ConditionName:
        """What its name is made of: the rule's value and reading only where the rule has them."""
        pathway = SEEN_CLASSIFICATION if self.pathway == "classification" else self.pathway
        value = {"threshold": self.threshold, "moore": self.top_fraction}.get(self.rule)
        reading = self.reading if self.rule == "threshold" else None
        shuffled = self.maps == "shuffled"
        return ConditionName(self.method, pathway, self.rule, value, reading, shuffled)

    @property
    def name(self) -> str:
        """masked/'s ``condition`` value for this condition (``voxray.config.conditions``)."""
        return str(self.parts)


@dataclass(frozen=True)
class MaskConfig:
    #: normalisation of attributions before thresholding: abs_max (|A|/max|A|), minmax, tanh (Li et
    #: al. 2022).
    normalise: Literal["abs_max", "minmax", "tanh"] = "abs_max"
    #: Table 2 of Zhang et al. 2023 on Traversal maps; each gets its shuffled-map control (below).
    conditions: tuple[MaskCondition, ...] = (
        MaskCondition("integrated_gradients", "traversal", "product"),
        MaskCondition("integrated_gradients", "traversal", "threshold", 0.1),
        MaskCondition("gradient_shap", "traversal", "product"),
    )
    #: give every own-map condition its shuffled-map control (same rule, another speaker's maps,
    #: as many bins kept), so no masked EER is read without the EER of a map that carries no
    #: speaker. ``conditions`` then holds both, each own condition followed by its control.
    controls: bool = True
    #: training utterances (a seeded sample) the class leak of each condition is measured on.
    leak_utterances: int = 2000
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=32))

    def __post_init__(self) -> None:
        if not self.controls:
            return
        expanded: list[MaskCondition] = []
        for cond in self.conditions:
            for c in (cond, replace(cond, maps="shuffled")) if cond.maps == "own" else (cond,):
                if c not in expanded:
                    expanded.append(c)
        # frozen: the expansion is the configured value, computed once at construction
        object.__setattr__(self, "conditions", tuple(expanded))
