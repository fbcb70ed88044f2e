"""The speaker model and what trains, embeds with, retrains and tunes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from voxray.config.resources import ResourceConfig
from voxray.config.validation import require_at_least, require_between


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
    #: resnet34 is resnet34se without its SE gates (Sarvaš 2021's ResNet34).
    arch: Literal[
        "ecapa_tdnn", "resnet34", "resnet34se", "bilstm", "alexnet", "ge2e", "campplus"
    ] = "ecapa_tdnn"
    #: base width: ECAPA C (512/1024), ResNet first stage (32), BiLSTM hidden size (512), GE2E
    #: LSTM hidden size (256; arch ge2e is resemblyzer's encoder, see voxray.models.ge2e), CAM++
    #: first TDNN layer (128; see voxray.models.campplus).
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
    #: early stopping (Lehmann & Stadelmann 2020 section 3.3): stop after this many epochs in
    #: a row without a lower validation loss and keep the best epoch's weights, ``epochs``
    #: being the most; 0 trains every epoch and keeps the last. The validation split is
    #: ``val_fraction`` of each training speaker's utterances (at least one), held out.
    patience: int = 0
    val_fraction: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        require_at_least("patience", self.patience, 0, " (0: no early stopping)")
        require_between("val_fraction", self.val_fraction, 0.0, 0.5)


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
    #: features/ (voxray.pipeline.embed_from_audio); "auto": when no stage of the command reads
    #: features/ (``voxray embed`` alone), else from the features stage's output.
    from_audio: Union[bool, Literal["auto"]] = "auto"
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=16))

    def __post_init__(self) -> None:
        require_at_least("bucket_frames", self.bucket_frames, 1)


@dataclass(frozen=True)
class RetrainConfig:
    """Zhang et al. 2023's reliability check: models trained again on masked data."""

    enabled: bool = True
    #: epochs for retraining (0: the base model's, train.epochs). Any other value confounds the
    #: mask with the amount of training.
    epochs: int = 0
    #: retrainings per condition, seeds train.seed, train.seed + 1, ... (vox1: 3; demo: 1).
    seeds: int = 1
    #: scratch: the base model's recipe from random weights (the default); continue: from the
    #: base model's weights (one reading of 000's "continue training"). Each is a named model.
    variants: tuple[Literal["scratch", "continue"], ...] = ("scratch",)

    def __post_init__(self) -> None:
        require_at_least("retrain.seeds", self.seeds, 1)
        if not self.variants or len(set(self.variants)) != len(self.variants):
            raise ValueError(
                f"retrain.variants must name scratch/continue once each, got {self.variants}"
            )


#: tune objectives computed on whole deletion curves (voxray.train.tune.deletion_scores).
DELETION_OBJECTIVES = ("deletion_gap", "deletion_auc")


@dataclass(frozen=True)
class WidthSweepConfig:
    """Lehmann & Stadelmann 2020 section 4.2 / Fig. 2: a BiLSTM trained per LSTM width
    (``model.channels``; the dense layers follow it), each scored by its test EER.

    Each width trains from scratch on the training speakers with early stopping (section 3.3:
    at most ``max_epochs``, stopped after ``patience`` epochs without a lower validation loss,
    the best epoch's weights kept); the validation split is ``val_fraction`` of each speaker's
    training utterances (at least one), held out of training.
    """

    enabled: bool = False
    widths: tuple[int, ...] = (256, 512, 1024)
    max_epochs: int = 32
    patience: int = 3
    val_fraction: float = 0.1
    #: training utterances used at most (a sweep trains len(widths) models); 0: all.
    max_train_utterances: int = 0

    def __post_init__(self) -> None:
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths: positive LSTM widths, got {list(self.widths)}")
        if len(set(self.widths)) != len(self.widths):
            raise ValueError(f"widths: each width once, got {list(self.widths)}")
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError(
                f"max_epochs and patience must be >= 1, got {self.max_epochs}, {self.patience}"
            )
        require_between("val_fraction", self.val_fraction, 0.0, 0.5)
        require_at_least("max_train_utterances", self.max_train_utterances, 0)


@dataclass(frozen=True)
class SegmentSweepConfig:
    """Lehmann & Stadelmann 2020 section 4.3 / Fig. 3: the trained model's test EER when every
    utterance is embedded as segments of each evaluation length (overlapping by ``overlap``),
    scored by the cosine and the dot product of the mean segment embeddings."""

    enabled: bool = False
    lengths_s: tuple[float, ...] = (0.4, 1.0, 2.0, 3.0, 4.0, 5.0)
    overlap: float = 0.5
    scorers: tuple[Literal["mean_cossim", "mean_dot"], ...] = ("mean_cossim", "mean_dot")

    def __post_init__(self) -> None:
        if not self.lengths_s or any(s <= 0 for s in self.lengths_s):
            raise ValueError(f"lengths_s: positive segment lengths, got {list(self.lengths_s)}")
        if len(set(self.lengths_s)) != len(self.lengths_s):
            raise ValueError(f"lengths_s: each length once, got {list(self.lengths_s)}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")
        if not self.scorers:
            raise ValueError("scorers: at least one of mean_cossim, mean_dot")


@dataclass(frozen=True)
class TuneConfig:
    #: the masking sweep below; the 003 sweeps (``lstm_width``, ``segment_length``) have their
    #: own ``enabled`` and run in the same stage.
    enabled: bool = True
    #: eer_gap scores each configuration against a random mask keeping as many bins
    #: (voxray.train.tune), which masking less cannot win; deletion_gap against a random
    #: deletion order; the others are uncorrected.
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
    #: times a trial is started again after its worker died (a lost node, a killed process),
    #: from scratch (a trial is one short attribution-and-mask run); then it counts as failed.
    max_failures: int = 2
    max_utterances: int = 32
    seed: int = 0
    lstm_width: WidthSweepConfig = field(default_factory=WidthSweepConfig)
    segment_length: SegmentSweepConfig = field(default_factory=SegmentSweepConfig)
    #: test utterances the 003 sweeps score (both sides of trials, as for the masking sweep).
    sweep_utterances: int = 200

    def __post_init__(self) -> None:
        require_at_least("max_failures", self.max_failures, 0)
        if self.objective in DELETION_OBJECTIVES and len(set(self.taus)) > 1:
            raise ValueError(
                f"tune.taus: objective {self.objective!r} deletes each map's bins in order over "
                f"the whole curve, which no tau enters, so a sweep over taus {list(self.taus)} "
                f"would score every tau the same; give one tau or use eer_gap / frozen_eer / "
                f"retrain_eer, whose masks keep the top-tau bins"
            )
