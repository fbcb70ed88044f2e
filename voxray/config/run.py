"""The whole configuration of a run, and how the embedded local Ray starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from voxray.config.attribution import AttributionConfig, MaskConfig, TrialConfig
from voxray.config.data import CorpusConfig, FeatureConfig
from voxray.config.evaluation import EvalConfig, ReportConfig
from voxray.config.models import EmbedConfig, ModelConfig, RetrainConfig, TrainConfig, TuneConfig


@dataclass(frozen=True)
class RayConfig:
    """How the embedded local Ray starts when no cluster address is given."""

    address: str = ""
    num_cpus: int = 0
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    object_store_mb: int = 0
    #: Ray Data's own progress bars; off by default: each stage prints voxray's progress lines
    progress_bars: bool = False
    #: seconds a stage's Ray Data execution may move no block before Ray Data stops it (-1:
    #: never). Ray's default, 30 min, stopped a legitimately slow batch (a perturbation
    #: method's utterances on a loaded CPU); a lost node is voxray's own stall watch's job
    #: (``<stage>.resources.stall_timeout_s``).
    no_progress_timeout_s: float = 14400.0

    def __post_init__(self) -> None:
        if self.no_progress_timeout_s <= 0 and self.no_progress_timeout_s != -1:
            raise ValueError(
                f"no_progress_timeout_s must be > 0 or -1 (never), got {self.no_progress_timeout_s}"
            )


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

    def __post_init__(self) -> None:
        if self.tune.lstm_width.enabled and self.model.arch != "bilstm":
            raise ValueError(
                f"tune.lstm_width sweeps the BiLSTM's LSTM width (Lehmann & Stadelmann 2020, "
                f"4.2); model.arch is {self.model.arch!r}: set model.arch=bilstm or disable it"
            )
