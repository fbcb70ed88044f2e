"""Typed, validated configuration: frozen dataclasses are the schema, YAML is only data.

``load_config`` deep-merges the YAML files it is given (``conf/base.yaml`` first when it
exists, then a profile, then ``--config`` files) and ``key=value`` overrides, then builds
the dataclasses below. An unknown key or a value of the wrong type raises ``ConfigError``
naming the dotted key, before any work starts (wespeaker's silently ignored typo is the bug
this avoids).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml


class ConfigError(ValueError):
    """A configuration file, key or value that cannot be used; the message names it."""


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ResourceConfig:
    """Ray resources for one stage's actor pool, applied at the ``map_batches`` call site."""

    batch_size: int = 16
    concurrency: int = 1
    num_cpus: float = 1.0
    #: GPUs per actor; "auto" takes 1 when the cluster has GPUs and 0 otherwise.
    num_gpus: Union[float, Literal["auto"]] = "auto"
    #: rows gathered into one write by the stages that write through Ray Data (one Parquet
    #: file per partition value among them); 0 writes each batch as it comes. Batch-sized
    #: files would be hundreds of thousands of files on VoxCeleb2, slow to list and to query;
    #: rows not yet written when a run dies are recomputed by the rerun.
    rows_per_file: int = 256

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rows_per_file < 0:
            raise ValueError(f"rows_per_file must be >= 0, got {self.rows_per_file}")


@dataclass(frozen=True)
class RayConfig:
    """How the embedded local Ray starts when no cluster address is given."""

    address: str = ""
    num_cpus: int = 0
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    object_store_mb: int = 0
    progress_bars: bool = True


@dataclass(frozen=True)
class S3Config:
    """S3 access; credentials come from the environment only, never from files we write."""

    endpoint_url: str = ""
    region: str = ""
    anon: bool = False


@dataclass(frozen=True)
class CorpusConfig:
    sample_rate: int = 16000
    #: resample files at other rates instead of quarantining them.
    resample: bool = False
    min_duration_s: float = 0.3
    max_duration_s: float = 180.0
    #: keep at most this many utterances (0: all), taken deterministically by utt_id hash.
    max_utterances: int = 0
    trial_lists: tuple[str, ...] = ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt")
    s3: S3Config = field(default_factory=S3Config)
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=64))


@dataclass(frozen=True)
class KaldiParams:
    """What defines a Kaldi fbank / MFCC front-end's output (``voxray.features.kaldi``): the keys
    of ``features`` that change the features, and what a model records as its front-end."""

    num_mel_bins: int = 80
    num_ceps: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    preemphasis: float = 0.97
    window: Literal["povey", "hamming", "hanning", "rectangular", "blackman"] = "povey"
    low_freq: float = 20.0
    high_freq: float = 0.0
    cepstral_lifter: float = 22.0
    #: cepstral mean normalisation per utterance.
    cmn: bool = True
    #: drop non-speech frames (Kaldi compute-vad energy rule) before writing.
    vad: bool = False
    vad_energy_threshold: float = 5.5
    vad_energy_mean_scale: float = 0.5

    @classmethod
    def of(cls, cfg: KaldiParams) -> KaldiParams:
        """Only the parameters (a ``FeatureConfig`` is one, plus kinds and resources)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**dataclasses.asdict(self))


@dataclass(frozen=True)
class FeatureConfig(KaldiParams):
    """Kaldi-compatible fbank / MFCC (Zhang et al. 2023 uses MFCC, Li et al. 2022 80-dim fbank):
    the front-end of the models voxray trains. The features stage computes each model's own
    front-end (an imported model brings its own); ``kinds`` adds Kaldi kinds computed beside
    it."""

    kinds: tuple[Literal["fbank", "mfcc"], ...] = ()
    #: 64 utterances a batch: fbank is cheap, so small batches are mostly per-batch overhead
    #: (bench/README.md: 16 streamed at 323 utt/s on 2 cores, 64 at 513, 256 at 636).
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=64))


@dataclass(frozen=True)
class HeadConfig:
    """Margin head: softmax, aam (ArcFace), am (CosFace), sphere, combined (Lehmann & Stadelmann
    2020: m1, m2, m3)."""

    kind: Literal["softmax", "aam", "am", "sphere", "combined"] = "aam"
    margin: float = 0.2
    scale: float = 30.0
    m1: float = 1.0
    m2: float = 0.0
    m3: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    arch: Literal["ecapa_tdnn", "resnet34se", "bilstm", "alexnet", "ge2e"] = "ecapa_tdnn"
    #: base width: ECAPA C (512/1024), ResNet first stage (32), BiLSTM hidden size (512), GE2E
    #: LSTM hidden size (256; arch ge2e is resemblyzer's encoder, see voxray.models.ge2e).
    channels: int = 512
    embedding_dim: int = 192
    #: bilstm only, with ``embedding_dim == 2 * channels``: train through Dense(2C) ->
    #: Dense(bottleneck_dim) -> head and embed with lstm2's time mean, as Lehmann & Stadelmann
    #: 2020 do (0: no bottleneck; see voxray.models.bilstm).
    bottleneck_dim: int = 0
    #: ecapa_tdnn only: width M of the multi-layer feature aggregation and the pooling over it
    #: (0: the paper's 1536 for every C; SpeechBrain's recipes use 3C). At small C the fixed 1536
    #: holds most of the compute: C=128 trains 7x faster with M=384 on a 2-core CPU.
    mfa_channels: int = 0
    feature_kind: Literal["fbank", "mfcc"] = "fbank"
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.mfa_channels < 0 or (self.mfa_channels and self.arch != "ecapa_tdnn"):
            raise ValueError(
                f"mfa_channels: a positive width for ecapa_tdnn only, got {self.mfa_channels} "
                f"for {self.arch!r}"
            )


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly training augmentation of feature crops."""

    enabled: bool = False
    noise_prob: float = 0.3
    noise_std: float = 0.1
    freq_mask_bins: int = 8
    time_mask_frames: int = 10


@dataclass(frozen=True)
class TrainConfig:
    name: str = "ecapa"
    epochs: int = 10
    batch_size: int = 64
    segment_s: float = 2.0
    crops_per_utt: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 2e-5
    scheduler: Literal["cyclic", "warmup_decay", "constant"] = "cyclic"
    warmup_epochs: int = 1
    num_workers: int = 1
    #: BatchNorm statistics over every worker's batch together (voxray.train.sync_bn): N
    #: workers of batch_size each then train like one worker of N x batch_size.
    sync_batchnorm: bool = True
    #: CPUs reserved per training worker (leave some for the Ray Data tasks that feed it).
    cpus_per_worker: float = 1.0
    #: torch threads of a CPU training worker (0: as many as the CPUs it reserves).
    torch_threads: int = 0
    use_gpu: Union[bool, Literal["auto"]] = "auto"
    amp: bool = True
    max_failures: int = 2
    seed: int = 0
    #: normalise each crop by its utterance's mean and standard deviation (Lehmann & Stadelmann
    #: 2020).
    normalise: bool = False
    #: keep iden_split.txt's test utterances (split 3) out of training, so that identification
    #: Top-1 is measured on held-out utterances (VoxCeleb1 verification recipes train on all).
    exclude_iden_test: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class EmbedConfig:
    """Full-utterance and overlapping-segment embeddings (Lehmann & Stadelmann 2020: 50%
    overlap)."""

    full: bool = True
    segments: bool = True
    segment_s: float = 2.0
    overlap: float = 0.5
    #: fp32, tf32 (CUDA matmuls) or bf16 autocast (see voxray.pipeline.precision).
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    #: full utterances are embedded from their first multiple of this many frames, so that
    #: utterances within that many frames of each other share a forward pass, each embedding
    #: exactly that of its cropped utterance alone (voxray.pipeline.length_buckets); 1 keeps
    #: every frame and batches identical lengths only.
    bucket_frames: int = 1
    #: decode, front-end and embedding in one actor pass from the manifest's audio, writing no
    #: features/ (evaluating a pretrained ``--model``; voxray.pipeline.embed_from_audio).
    from_audio: bool = False
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=16))

    def __post_init__(self) -> None:
        if self.bucket_frames < 1:
            raise ValueError(f"bucket_frames must be >= 1, got {self.bucket_frames}")


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
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=8))

    def __post_init__(self) -> None:
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
    #: other speaker are ALWAYS masked with their Traversal map: the Classification pathway
    #: explains a training class, which for an unseen speaker is an arbitrary one (Zhang et al. 2023
    #: limits it to speech seen in training, Fig. 2). The name says so: ``seen-classification``.
    pathway: str = "classification"
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
    def name(self) -> str:
        pathway = "seen-classification" if self.pathway == "classification" else self.pathway
        base = f"{self.method}/{pathway}/{self.rule}"
        if self.rule == "threshold":
            base = f"{base}:{self.reading}@{self.threshold:g}"
        elif self.rule == "moore":
            base = f"{base}@{self.top_fraction:g}"
        return f"{base}/shuffled" if self.maps == "shuffled" else base


@dataclass(frozen=True)
class MaskConfig:
    #: normalisation of attributions before thresholding: abs_max (|A|/max|A|), minmax, tanh (Li et
    #: al. 2022).
    normalise: Literal["abs_max", "minmax", "tanh"] = "abs_max"
    conditions: tuple[MaskCondition, ...] = (
        MaskCondition("integrated_gradients", "classification", "product"),
        MaskCondition("integrated_gradients", "classification", "threshold", 0.1),
        MaskCondition("gradient_shap", "classification", "product"),
        MaskCondition("integrated_gradients", "classification", "product", maps="shuffled"),
    )
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=32))


@dataclass(frozen=True)
class RetrainConfig:
    enabled: bool = True
    #: epochs for retraining (0: the same as train.epochs).
    epochs: int = 0


@dataclass(frozen=True)
class TuneConfig:
    enabled: bool = True
    #: eer_gap / deletion_gap score each configuration against a random mask keeping as many
    #: bins (voxray.train.tune), which masking less cannot win; the others are uncorrected.
    objective: Literal["eer_gap", "deletion_gap", "frozen_eer", "deletion_auc", "retrain_eer"] = (
        "eer_gap"
    )
    num_samples: int = 3
    taus: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    #: methods with a Traversal pathway: the sweep masks test speakers, unseen in training.
    methods: tuple[str, ...] = (
        "integrated_gradients",
        "saliency",
        "input_x_gradient",
        "gradient_shap",
    )
    #: the pathway of training speakers' maps (retrain_eer); test utterances use Traversal.
    pathways: tuple[str, ...] = ("traversal",)
    lrp_epsilons: tuple[float, ...] = (0.1, 0.5, 1.0)
    lrp_gammas: tuple[float, ...] = (1.0, 5.0)
    cam_layer_sets: tuple[str, ...] = ("block3", "block2+block3")
    max_epochs: int = 2
    grace_period: int = 1
    max_concurrent: int = 1
    max_utterances: int = 32
    seed: int = 0


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
    enabled: bool = True
    epochs: int = 5
    segment_s: float = 2.0
    top_fraction: float = 0.005
    #: learning rate of the AlexNet gender classifier and its retraining (Sarvaš 2021: 1e-4).
    lr: float = 1e-3
    #: what the trained classifier is trained again on: the Moore-augmented crops (Sarvaš 2021 §4.3)
    #: or the original crops and the augmented ones together.
    retrain_on: Literal["augmented", "original+augmented"] = "original+augmented"


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
    #: perturbed copies per input: FaithfulnessCorrelation runs, sensitivity/stability samples.
    samples: int = 10
    #: the share of the T x F bins one FaithfulnessCorrelation subset / Monotonicity step holds.
    subset_fraction: float = 0.05
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=1))

    def __post_init__(self) -> None:
        if self.max_utterances < 2:
            raise ValueError(f"max_utterances must be >= 2, got {self.max_utterances}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if not 0.0 < self.subset_fraction <= 1.0:
            raise ValueError(f"subset_fraction must be in (0, 1], got {self.subset_fraction}")


@dataclass(frozen=True)
class EvalConfig:
    scorers: tuple[str, ...] = ("cosine", "mean_cossim", "mean_dot", "ahc", "dominant_sets")
    linkages: tuple[str, ...] = (
        "single",
        "complete",
        "average",
        "weighted",
        "centroid",
        "median",
        "ward",
    )
    p_targets: tuple[float, ...] = (0.01, 0.05)
    asnorm: bool = False
    asnorm_cohort: int = 200
    asnorm_top_k: int = 100
    identification: bool = True
    faithfulness: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    multispeaker: MultiSpeakerConfig = field(default_factory=MultiSpeakerConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)
    gender: GenderConfig = field(default_factory=GenderConfig)
    xai: XaiMetricsConfig = field(default_factory=XaiMetricsConfig)


@dataclass(frozen=True)
class ReportConfig:
    heatmap_utterances: int = 3
    tsne: bool = True
    max_points: int = 2000


@dataclass(frozen=True)
class VoxrayConfig:
    """The whole pipeline's configuration; each stage receives its own section."""

    profile: str = "custom"
    seed: int = 0
    data_root: str = ""
    out: str = ""
    #: an existing model (a voxray models/<name>/ folder or a SpeechBrain embedding_model.ckpt).
    model_path: str = ""
    ray: RayConfig = field(default_factory=RayConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


# --------------------------------------------------------------------------- loading


def conf_dir() -> Path:
    """The conf/ folder: $VOXRAY_CONF, ./conf, or the one beside the installed package."""
    env = os.environ.get("VOXRAY_CONF")
    if env:
        return Path(env)
    here = Path.cwd() / "conf"
    if (here / "base.yaml").exists():
        return here
    return Path(__file__).resolve().parent.parent / "conf"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Safe-load one YAML mapping; a missing file or a non-mapping names the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from exc
    node: dict[str, Any] = {}
    cur = node
    parts = key.split(".")
    for part in parts[:-1]:
        cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value
    return node


def profile_path(profile: str) -> Path:
    path = conf_dir() / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir() / "profiles").glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r} (known: {', '.join(known) or 'none'})")
    return path


def load_config(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
    use_base: bool = True,
) -> VoxrayConfig:
    """Build a validated ``VoxrayConfig`` from base.yaml, a profile, files and overrides."""
    data: dict[str, Any] = {}
    base = conf_dir() / "base.yaml"
    if use_base and base.is_file():
        data = deep_merge(data, read_yaml(base))
    if profile:
        data = deep_merge(data, read_yaml(profile_path(profile)))
        data["profile"] = profile
    for f in files:
        data = deep_merge(data, read_yaml(f))
    for o in overrides:
        data = deep_merge(data, parse_override(o))
    return build(VoxrayConfig, data, "")


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace with dotted keys: ``replace(cfg, **{"train.epochs": 3})``."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = value
    for head, sub in nested.items():
        flat[head] = replace(getattr(cfg, head), **sub)
    return dataclasses.replace(cfg, **flat)


def to_dict(cfg: Any) -> Any:
    """A plain, YAML-safe structure (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Validate a plain mapping (e.g. a config.yaml we wrote) into ``cls``."""
    return build(cls, data, "")


# --------------------------------------------------------------------------- validation


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build(tp: Any, value: Any, key: str) -> Any:
    """Coerce ``value`` to type ``tp`` or raise ConfigError naming ``key``."""
    where = key or "<root>"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build_section(tp, value, key)
    if origin is Literal:
        return _build_choice(tp, value, where)
    if origin in (Union, types.UnionType):
        return _build_union(tp, value, key)
    if origin in (tuple, list):
        return _build_sequence(tp, value, key)
    if tp is Any:
        return value
    if tp in _SCALARS:
        return _SCALARS[tp](value, where)
    raise ConfigError(f"{where}: unsupported type {_describe(tp)}")


def _build_section(tp: Any, value: Any, key: str) -> Any:
    """A config dataclass from a mapping: unknown keys are named, each field built in turn."""
    where = key or "<root>"
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
    hints = typing.get_type_hints(tp)
    names = {f.name for f in dataclasses.fields(tp) if f.init}
    unknown = sorted(set(value) - names)
    if unknown:
        full = [f"{key}.{u}" if key else str(u) for u in unknown]
        raise ConfigError(
            f"unknown config key {', '.join(full)} (valid keys here: {', '.join(sorted(names))})"
        )
    kwargs = {
        name: build(hints[name], val, f"{key}.{name}" if key else name)
        for name, val in value.items()
    }
    try:
        return tp(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _build_choice(tp: Any, value: Any, where: str) -> Any:
    """One of a Literal's values, of the same type (``1`` is not ``True``)."""
    allowed = typing.get_args(tp)
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    return value


def _build_union(tp: Any, value: Any, key: str) -> Any:
    """The first member type ``value`` builds as."""
    for arg in typing.get_args(tp):
        try:
            return build(arg, value, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key or '<root>'}: {value!r} does not match {_describe(tp)}")


def _build_sequence(tp: Any, value: Any, key: str) -> Any:
    """A tuple (fixed length or ``tuple[X, ...]``) or list, each item built and named by index."""
    where = key or "<root>"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        items = zip(args, value, strict=True)
        return tuple(build(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(items))
    item = args[0] if args else Any
    built = [build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(built) if origin is tuple else built


def _build_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    return value


def _build_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value


def _build_float(value: Any, where: str) -> float:
    if isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) as a string; accept what Python reads as a number
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _build_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


#: how each scalar type is checked (bool before int: YAML's true is not the integer 1).
_SCALARS: dict[type, Callable[[Any, str], Any]] = {
    bool: _build_bool,
    int: _build_int,
    float: _build_float,
    str: _build_str,
}
