"""Assemble the report: one section per experiment, from the run's outputs to an HTML page.

Each ``_Builder`` method turns the loaded outputs into a ``Section``: a sentence on
what the reader is looking at, tables, figures and, where a seed paper makes a claim, the
computed verdict. A section whose inputs the run did not produce says so ("not computed
in this run") instead of failing, so a report can be written after any subset of stages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np
import pandas as pd

from voxray import __version__
from voxray.attribution.heatmap import render_heatmaps
from voxray.config import VoxrayConfig, dump_yaml
from voxray.features import FrontEndSpec, kaldi_front_end
from voxray.io.storage import Storage
from voxray.log import get_logger, redact
from voxray.report import plots, tables, verdicts
from voxray.report import trials as trial_report
from voxray.report import xai as xai_report
from voxray.report.embeddings import project_2d
from voxray.report.frequency import band_shares, mean_profiles
from voxray.report.html import Image, Note, Preformatted, Section, Table, render_document
from voxray.report.load import RunOutputs, load_outputs
from voxray.report.names import method_pathway_name, order_lists

log = get_logger(__name__)
TITLE = "voxray report"


#: (key, heading, what the reader is looking at) per section, in page order; the intro is
#: formatted with the run's config as ``cfg``; ``_Builder.<key>(section)`` fills the section.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "stages",
        "Run: stages, timings and counts",
        "Each stage's marker in _stages/: how many items it read, wrote, quarantined or found "
        "already done, and how "
        "long it took (parts of a stage are listed as stage.part).",
    ),
    (
        "verification",
        "Speaker verification: EER and minDCF",
        "Equal error rate (in %) and minimum detection cost of every model, data condition, trial "
        "list and scorer; "
        "'None (clean)' is unmasked test data. Lower is better for both.",
    ),
    (
        "reliability",
        "Reliability of the attributions: retraining on masked data (Table 2 of Zhang et al. 2023)",
        "Each row masks the features with an attribution (attribution x input; '+ mask(tau, "
        "reading)' also zeroes "
        "bins whose attribution, read signed (A / max A) or as magnitude (|A| / max|A|), is not "
        "above tau). "
        "Utterances of the training speakers are masked with their Classification map, every test "
        "utterance (a "
        "speaker the model never saw) with its Traversal map: a Classification map of an unseen "
        "speaker explains "
        "an arbitrary training class. The frozen base model is tested on the masked test data; a "
        "model retrained "
        "on the masked training data is tested on masked and on clean test data. The shuffled-map "
        "control masks "
        "each utterance with another speaker's map, keeping as many bins: masked-test EERs well "
        "below it mean "
        "the maps carry the speaker. The seed's VoxCeleb1 EERs are shown for reference.",
    ),
    (
        "clustering",
        "Clustering scorers on segment embeddings (Tables 3-4 of Lehmann & Stadelmann 2020)",
        "EER (%) of the base model on clean data when "
        "each utterance is embedded as 50%-overlapping "
        ""
        "segments and "
        "trials are scored by the mean cosine / dot product of the segment embeddings, by "
        "agglomerative clustering "
        "(AHC, score = distance of the last merge) per linkage, or by dominant sets (DS); "
        "whole-utterance cosine "
        "scoring is the first row.",
    ),
    (
        "identification",
        "Speaker identification",
        "Closed-set identification accuracy (Top-1, %) on the identification split.",
    ),
    (
        "frequency",
        "Where the attributions look: frequency-importance profiles (Zhang et al. 2023)",
        "Each method's importance per fbank bin, "
        "averaged over utterances (each utterance's profile "
        ""
        "scaled to sum 1), "
        "on the bins' centre frequencies; shaded: the "
        "fundamental F0 (~70-400 Hz) and the first two "
        ""
        "formants F1 "
        "(~300-1000 Hz) and F2 (~1000-3000 Hz). The bars sum the importance per band; the black "
        "tick is what a map "
        "with equal importance everywhere would give.",
    ),
    (
        "heatmaps",
        "Attribution heat maps",
        "Input features and each method's attribution "
        "map for up to {cfg.report.heatmap_utterances} "
        ""
        "test utterances "
        "(those explained by the most methods). Signed maps are drawn red (positive) to blue "
        "(negative) around zero, "
        "non-negative maps (CAMs) dark to bright.",
    ),
    (
        "trials",
        "Trial explanations: the worst false accepts and rejects",
        "Each verification trial explained by the trial stage (by default the worst false "
        "accepts and false rejects at each list's EER threshold): both spectrograms with every "
        "method's map of the cosine score with respect to that side, the other side's embedding"
        " held fixed. Shaded on the spectrograms: the frames whose summed attribution raises "
        "the score most (the time regions driving the decision); the table lists them per "
        "method. Below, the frequency profile of what makes trials match against what makes "
        "single embeddings (the same method on the Traversal pathway).",
    ),
    (
        "faithfulness",
        "Faithfulness: deletion and insertion (Li et al. 2022)",
        "Deletion removes the most relevant bins first and tracks the model's output (a faithful "
        "map makes it fall "
        "fast: low AUC); insertion reveals them first on a blank input (a faithful map makes it "
        "rise fast: high AUC). "
        "Random and left-to-right time-aligned masking are the references.",
    ),
    (
        "multispeaker",
        "Multi-speaker localisation (Table 2 of Li et al. 2022)",
        "An utterance of the target speaker A is concatenated with interfering speakers B and C; "
        "the input is masked "
        "by each CAM's saliency map from the given layers ('+': maps averaged) and the Top-1 "
        "accuracy (%) of "
        "recognising A is reported. 'Original' is the unmasked concatenation.",
    ),
    (
        "flipping",
        "Pixel flipping and the gender experiment (Sarvaš 2021)",
        "The most relevant bins (by each method) are set to zero and the accuracy is measured as "
        "the flipped fraction "
        "grows; random flipping is the reference. A faithful relevance map makes the accuracy drop "
        "faster than "
        "random. The gender table reproduces Sarvaš 2021's Table 1 (accuracy before and after "
        "flipping 0.5% of the bins, for "
        "the classifier and the one retrained with Moore-neighbourhood augmentation).",
    ),
    (
        "sanity",
        "Sanity checks: model and label randomisation",
        "Maps computed after randomising the model's layers from the top (cascading) and after "
        "training on shuffled "
        "labels are compared with the trained model's maps (Spearman rank correlation, SSIM). A "
        "method whose maps "
        "stay similar when the model is destroyed explains the input, not the model: such methods "
        "are flagged "
        "(highlighted rows).",
    ),
    (
        "xai",
        "Which method to trust here: Quantus metric families",
        "Every method and pathway measured with the Quantus package on a sample of test crops: "
        "faithfulness (FaithfulnessCorrelation, ROAD, IROF, Monotonicity), robustness "
        "(Max/AvgSensitivity, RelativeInputStability), complexity (Sparseness, Complexity), "
        "randomisation (MPRT, RandomLogit) and axiomatic (Completeness, InputInvariance). Rows "
        "are ranked by the mean rank over the metrics, each oriented so that rank 1 is the "
        "better explanation (lower is better for ROAD, the sensitivities, the stability, "
        "Complexity, MPRT and RandomLogit); the seeds' own tests (deletion / insertion AUC, the"
        " sanity check's final Spearman correlation) stand beside them. Blank: not defined for "
        "the pathway.",
    ),
    (
        "embeddings",
        "Embedding space: PCA and t-SNE",
        "The base model's whole-utterance embeddings "
        "of clean data (at most {cfg.report.max_points} "
        ""
        "utterances, "
        "length-normalised) projected to 2-D, coloured by speaker (the ten with the most "
        "utterances; others grey) "
        "and by gender.",
    ),
    (
        "training",
        "Training",
        "Final training figures per model (metrics/) and the per-epoch history.",
    ),
    (
        "tune",
        "Hyper-parameter sweep (Ray Tune)",
        "The ten best trials by the objective ({cfg.tune.objective}; lower is better) with their "
        "sampled mask "
        "threshold, method, pathway, LRP and CAM settings, and the best configuration as a config "
        "overlay. "
        "eer_gap and deletion_gap subtract the score of a random mask keeping as many bins, so a "
        "configuration "
        "cannot win by masking less.",
    ),
    (
        "quarantine",
        "Quarantine",
        "Inputs the run rejected and went on without, counted per stage and reason, and the first "
        "rows.",
    ),
    ("config", "Configuration", "The resolved configuration of the run (credentials redacted)."),
)


@dataclass
class Report:
    html: str
    sections: list[str]
    images: int


def _missing(what: str) -> Note:
    return Note(f"Not computed in this run: {what}.", "missing")


def _curves(out: RunOutputs, experiment: str) -> pd.DataFrame:
    c = out.curves
    if c is None or c.empty:
        return pd.DataFrame(columns=["experiment", "model", "method", "variant", "x", "y"])
    return c[c["experiment"] == experiment]


def _panels(
    frame: pd.DataFrame, title: str, by: tuple[str, ...] = ("model", "variant")
) -> list[tuple[str, pd.DataFrame]]:
    """One panel per distinct combination of ``by`` (only the columns that vary are named);
    none for an empty frame."""
    if frame.empty:
        return []
    varying = [c for c in by if frame[c].nunique() > 1]
    if not varying:
        return [(title, frame)]
    return [
        (f"{title}: {', '.join(plots.variant_name(str(k)) for k in key)}", group)
        for key, group in frame.groupby(varying, sort=True)
    ]


class _Builder:
    """Fills the sections of ``SECTIONS``: one method per key, reading the loaded outputs."""

    def __init__(
        self, out: RunOutputs, cfg: VoxrayConfig, base: str, front_end: FrontEndSpec
    ) -> None:
        self.out = out
        self.cfg = cfg
        self.base = base
        self.front_end = front_end
        self.extractor = front_end.build()
        self.lists = tables.trial_lists(out.metrics, cfg.corpus.trial_lists)
        self.hz = self._hz_axis()

    def _hz_axis(self) -> np.ndarray | None:
        try:
            return self.extractor.bin_frequencies(self.cfg.corpus.sample_rate)
        except ValueError as exc:
            log.warning("report: no Hz axis for the frequency profiles: %s", exc)
            return None

    # ------------------------------------------------------------------ run

    def stages(self, s: Section) -> None:
        t = tables.stage_table(self.out.stages)
        s.blocks.append(Table(t) if not t.empty else _missing("no stage markers in _stages/"))
        skipped = tables.skipped_table(self.out.stages)
        if not skipped.empty:
            s.blocks.append(Table(skipped, "Left out of this run, and why"))
        for rel, why in sorted(self.out.problems.items()):
            s.blocks.append(Note(f"Could not read {rel}: {why}", "problem"))

    def verification(self, s: Section) -> None:
        t = tables.verification_table(self.out.metrics, self.base, self.cfg.corpus.trial_lists)
        if t.empty:
            s.blocks.append(_missing("no verification metrics in metrics/"))
            return
        s.blocks.append(Table(t))
        det = _curves(self.out, "det")
        if not det.empty:
            s.blocks.append(
                Image(
                    plots.det_plot(det, self.lists),
                    "DET curves per trial list",
                    "DET curves (cosine scoring) on normal-deviate axes; closer to the origin is "
                    "better.",
                )
            )

    def reliability(self, s: Section) -> None:
        if not self.lists:
            s.blocks.append(_missing("no verification metrics in metrics/"))
            return
        order = [f"masked:{c.name}" for c in self.cfg.mask.conditions]
        t = tables.reliability_table(
            self.out.metrics, self.base, self.lists[0], condition_order=order
        )
        if t.empty or len(t) < 2:
            s.blocks.append(
                _missing("no masked-data conditions in metrics/ (the mask and retrain stages)")
            )
        if not t.empty:
            s.blocks.append(Table(t, f"Trial list {self.lists[0]}, cosine scoring"))
        s.verdicts.append(verdicts.reliability_verdict(t))

    def clustering(self, s: Section) -> None:
        t = tables.clustering_table(self.out.metrics, self.base, self.cfg.corpus.trial_lists)
        s.verdicts.append(
            verdicts.ahc_verdict(self.out.metrics, self.base, self.cfg.corpus.trial_lists)
        )
        s.blocks.append(
            Table(t)
            if not t.empty
            else _missing("no clean-data EERs of the base model in metrics/")
        )

    def _skips(self, s: Section, part: str) -> bool:
        """Notes for what the evaluate ``part`` left out and why; True when it skipped it all."""
        record = self.out.stages.get(f"evaluate.{part}", {})
        partly = record.get("partly_skipped")
        for what, why in sorted(partly.items()) if isinstance(partly, dict) else ():
            s.blocks.append(Note(f"Left out of this run: {what} ({why}).", "missing"))
        if record.get("skipped"):
            s.blocks.append(Note(f"Skipped in this run: {record['skipped']}.", "missing"))
            return True
        return False

    def identification(self, s: Section) -> None:
        if self._skips(s, "identification"):
            return
        t = tables.identification_table(self.out.metrics)
        s.blocks.append(
            Table(t) if not t.empty else _missing("no identification Top-1 in metrics/")
        )

    # ------------------------------------------------------------------ attributions

    def frequency(self, s: Section) -> None:
        p = self.out.profiles
        # trial maps have their own section (they explain a pair, not one utterance)
        profiles = mean_profiles(p[p["pathway"] != "trial"]) if p is not None else {}
        hz = self.hz
        if hz is not None and profiles and any(len(p) != len(hz) for p in profiles.values()):
            log.warning(
                "report: profiles have %s bins, the model's front-end %d; no Hz axis",
                sorted({len(p) for p in profiles.values()}),
                len(hz),
            )
            hz = None
        s.verdicts.append(verdicts.formant_verdict(profiles, hz))
        if not profiles:
            s.blocks.append(_missing("no attribution frequency profiles in attributions/"))
            return
        s.blocks.append(
            Image(
                plots.frequency_profile_plot(profiles, hz),
                "Mean frequency-importance profile per method",
            )
        )
        if hz is not None:
            s.blocks.append(
                Image(
                    plots.band_plot(band_shares(profiles, hz)),
                    "Importance per frequency band per method",
                )
            )

    def heatmaps(self, s: Section) -> None:
        if not self.out.heatmaps:
            s.blocks.append(_missing("no attribution maps with matching features"))
            return
        shift = self.extractor.frame_shift_ms / 1000.0
        for h in self.out.heatmaps:
            hz = self.hz if self.hz is not None and len(self.hz) == h.features.shape[1] else None
            maps = {method_pathway_name(k): v for k, v in h.maps.items()}
            png = render_heatmaps(h.features, maps, hz, shift, f"utterance {h.utt_id}")
            s.blocks.append(Image(png, f"attribution heat maps of {h.utt_id}"))

    def faithfulness(self, s: Section) -> None:
        if self._skips(s, "faithfulness"):
            return
        s.verdicts.append(verdicts.cam_random_verdict(self.out.metrics))
        t = tables.faithfulness_table(self.out.metrics)
        s.blocks.append(
            Table(t) if not t.empty else _missing("no deletion / insertion AUCs in metrics/")
        )
        deletion = _panels(_curves(self.out, "deletion"), "Deletion")
        insertion = _panels(_curves(self.out, "insertion"), "Insertion")
        labelled = [(p, "Bins masked (%)") for p in deletion] + [
            (p, "Bins revealed (%)") for p in insertion
        ]
        if len(deletion) == len(insertion):  # each deletion panel beside its insertion panel
            labelled = [
                x for i in range(len(deletion)) for x in (labelled[i], labelled[len(deletion) + i])
            ]
        if labelled:
            png = plots.curves_plot(
                [p for p, _ in labelled], [x for _, x in labelled], "Model output", x_percent=True
            )
            s.blocks.append(
                Image(
                    png,
                    "deletion and insertion curves per method",
                    "Left: deletion (lower is better); right: insertion (higher is better).",
                )
            )

    def multispeaker(self, s: Section) -> None:
        if self._skips(s, "multispeaker"):
            return
        s.verdicts.append(verdicts.layer_cam_verdict(self.out.metrics))
        cases = self.cfg.eval.multispeaker.cases
        t = tables.multispeaker_table(self.out.metrics, cases)
        if t.empty:
            s.blocks.append(_missing("no multi-speaker results in metrics/"))
            return
        s.blocks.append(
            Table(
                t,
                "Top-1 accuracy (%); G-CAM: Grad-CAM++, S-CAM: Score-CAM, L-CAM: Layer-CAM",
                decimals=2,
            )
        )
        captions = {
            "precision": "Localisation precision (%): share of the frames the mask keeps that "
            "belong to A",
            "recall": "Localisation recall (%): share of A's frames the mask keeps",
        }
        for metric, caption in captions.items():
            extra = tables.multispeaker_table(self.out.metrics, cases, metric)
            if not extra.empty:
                s.blocks.append(
                    Table(extra.drop(index="Original", errors="ignore"), caption, decimals=2)
                )

    def flipping(self, s: Section) -> None:
        s.verdicts.append(verdicts.lrp_flipping_verdict(self.out.metrics))
        self._skips(s, "gender")
        t = tables.pixel_flipping_table(self.out.metrics)
        s.blocks.append(
            Table(t, "Pixel flipping")
            if not t.empty
            else _missing("no pixel-flipping accuracies in metrics/")
        )
        c = _curves(self.out, "pixel_flipping")
        if not c.empty:
            png = plots.curves_plot(
                _panels(c, "Pixel flipping"),
                "Bins flipped (%)",
                "Accuracy (%)",
                x_percent=True,
                y_percent=True,
            )
            s.blocks.append(Image(png, "pixel-flipping curves per method"))
        g = tables.gender_table(self.out.metrics)
        s.blocks.append(
            Table(g, "Gender classifier (Sarvaš 2021, Table 1)")
            if not g.empty
            else _missing("no gender-experiment accuracies in metrics/")
        )

    def sanity(self, s: Section) -> None:
        if self._skips(s, "sanity"):
            return
        t = tables.sanity_table(self.out.metrics)
        s.blocks.append(
            Table(t, highlight="Flagged", decimals=3)
            if not t.empty
            else _missing("no sanity-check results in metrics/")
        )
        for experiment, title in (
            ("sanity_cascading", "Cascading randomisation"),
            ("sanity_label", "Label randomisation"),
        ):
            c = _curves(self.out, experiment)
            if not c.empty:
                png = plots.curves_plot(
                    _panels(c, title),
                    "Layers randomised" if experiment == "sanity_cascading" else "Step",
                    "Similarity to the trained model's maps",
                )
                s.blocks.append(Image(png, f"{title.lower()} curves per method"))

    def trials(self, s: Section) -> None:
        views = self.out.trial_views
        if not views:
            s.blocks.append(_missing("no trial attributions in attributions/ (the trial stage)"))
            return
        shift = self.extractor.frame_shift_ms / 1000.0
        s.blocks.append(
            Table(trial_report.regions_table(views, shift), "Time regions that raise the score")
        )
        for v in views:
            png = trial_report.trial_figure(v, self.hz, shift)
            s.blocks.append(Image(png, f"trial maps of {v.utt_a} and {v.utt_b}"))
        profiles = mean_profiles(self.out.profiles) if self.out.profiles is not None else {}
        pairs = trial_report.profile_pairs(profiles)
        if pairs:
            hz = self.hz
            if hz is not None and any(len(p) != len(hz) for p in pairs.values()):
                hz = None
            s.blocks.append(
                Image(
                    plots.frequency_profile_plot(pairs, hz),
                    "Frequency profile of trial maps against single-embedding maps",
                )
            )

    def xai(self, s: Section) -> None:
        t = xai_report.methods_table(self.out.metrics, self.base)
        if t.empty:
            s.blocks.append(_missing("no Quantus metrics in metrics/ (evaluate.xai)"))
            return
        s.blocks.append(Table(t, f"Methods x metrics, {self.base}", decimals=3))
        leaders = xai_report.family_leaders(self.out.metrics, self.base)
        if not leaders.empty:
            s.blocks.append(Table(leaders, "First method per family", decimals=2))

    # ------------------------------------------------------------------ models and run

    def embeddings(self, s: Section) -> None:
        e = self.out.embeddings
        if e is None or len(e) < 3:
            s.blocks.append(
                _missing("fewer than 3 clean whole-utterance embeddings of the base model")
            )
            return
        x = np.stack(e["embedding"].to_list())
        methods = ["pca", "tsne"] if self.cfg.report.tsne else ["pca"]
        for method in methods:
            xy = project_2d(x, method, seed=self.cfg.seed)
            name = "PCA" if method == "pca" else "t-SNE"
            s.blocks.append(
                Image(
                    plots.embedding_plot(xy, list(e["speaker_id"]), list(e["gender"]), name),
                    f"{name} of the embeddings by speaker and by gender",
                )
            )

    def training(self, s: Section) -> None:
        t = tables.training_table(self.out.metrics)
        s.blocks.append(Table(t) if not t.empty else _missing("no training metrics in metrics/"))
        if self.out.histories:
            s.blocks.append(
                Image(
                    plots.training_plot(self.out.histories), "training loss and accuracy per epoch"
                )
            )

    def tune(self, s: Section) -> None:
        t = tables.tune_table(self.out.tune_results, top=10)
        s.blocks.append(Table(t) if not t.empty else _missing("no tune/results.parquet"))
        points = tables.sweep_points(self.out.tune_results)
        if not points.empty:
            s.blocks.append(
                Image(
                    plots.sweep_plot(points),
                    "EER against kept fraction per method",
                    "Each trial's frozen-model EER on its masked test subset against the share of "
                    "bins its mask keeps; hollow markers: the same maps permuted over the bins. "
                    "A method whose own masks sit below its random ones keeps the speaker in fewer "
                    "bins than chance.",
                )
            )
        if self.out.tune_best:
            s.blocks.append(Preformatted(self.out.tune_best, "tune/best.yaml"))

    def quarantine(self, s: Section) -> None:
        summary = tables.quarantine_summary(self.out.quarantine)
        if summary.empty:
            s.blocks.append(Note("Nothing was quarantined in this run."))
            return
        n = len(self.out.quarantine) if self.out.quarantine is not None else 0
        s.blocks.append(Table(summary, f"{n} row{'s' if n != 1 else ''} in quarantine.parquet"))
        s.blocks.append(Table(tables.quarantine_first(self.out.quarantine), "First rows"))

    def config(self, s: Section) -> None:
        s.blocks.append(Preformatted(redact(dump_yaml(self.cfg))))

    # ------------------------------------------------------------------ header

    def facts(self) -> list[tuple[str, str]]:
        cfg = self.cfg
        m = self.out.manifest
        facts = [
            (
                "Model",
                f"{self.base} ({cfg.model.arch}, C={cfg.model.channels}, "
                f"{cfg.model.embedding_dim}-d, "
                f"{self.front_end.name} front-end)",
            ),
            ("Profile", cfg.profile),
        ]
        if m is not None and not m.empty:
            hours = float(m["duration_s"].sum()) / 3600 if "duration_s" in m else float("nan")
            splits = m["split"].value_counts().to_dict() if "split" in m else {}
            facts.append(
                (
                    "Corpus",
                    f"{len(m):,} utterances, {m['speaker_id'].nunique():,} speakers, {hours:.2f} h",
                )
            )
            facts.append(("Splits", ", ".join(f"{k}: {v:,}" for k, v in sorted(splits.items()))))
        else:
            facts.append(("Corpus", "no manifest.parquet"))
        if self.out.trials is not None and not self.out.trials.empty:
            counts = self.out.trials["list"].astype(str).value_counts()
            lists = order_lists(counts.index, cfg.corpus.trial_lists)
            facts.append(("Trials", ", ".join(f"{k}: {counts[k]:,}" for k in lists)))
        top = {k: v for k, v in self.out.stages.items() if "." not in k}
        seconds = sum(
            float(v["seconds"]) for v in top.values() if isinstance(v.get("seconds"), (int, float))
        )
        facts.append(
            (
                "Stage time",
                f"{seconds / 60:.1f} min over {len(top)} stages" if top else "no stage markers",
            )
        )
        facts.append(("Output", cfg.out))
        facts.append(
            ("Generated", f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} by voxray {__version__}")
        )
        return facts


def _renamed_code(exc: Exception) -> bool:
    """True for an error that says the code itself is wrong (a renamed section method, helper
    or module attribute), which must fail the report rather than become a note; data of an
    unexpected shape raises on the data (a frame, a value), not on a module or the builder."""
    if isinstance(exc, (NameError, ImportError)):
        return True
    return isinstance(exc, AttributeError) and isinstance(exc.obj, (ModuleType, _Builder))


def build_report(
    out: Storage, cfg: VoxrayConfig, base: str, front_end: FrontEndSpec | None = None
) -> Report:
    """Read the outputs under ``out`` and render the report (``base``: the base model's name,
    ``front_end``: its input representation, which labels the axes; by default the Kaldi
    front-end ``cfg`` trains on).

    A section that fails to render (data of an unexpected shape) becomes a note naming the
    error, logged with its traceback; the other sections are still written.
    """
    front_end = front_end or kaldi_front_end(cfg.model.feature_kind, cfg.features)
    loaded = load_outputs(
        out,
        base,
        front_end.name,
        cfg.report.max_points,
        cfg.report.heatmap_utterances,
        seed=cfg.seed,
    )
    b = _Builder(loaded, cfg, base, front_end)
    sections = []
    for key, title, intro in SECTIONS:
        s = Section(key, title, intro.format(cfg=cfg))
        fill: Callable[[Section], None] = getattr(b, key)
        try:
            fill(s)
        except Exception as exc:  # noqa: BLE001 - one section must not cost the whole report
            if _renamed_code(exc):
                raise
            log.exception("report: section %s failed", key)
            s.blocks.append(
                Note(f"This section could not be rendered: {type(exc).__name__}: {exc}", "problem")
            )
        sections.append(s)
    html = render_document(TITLE, b.facts(), sections)
    return Report(html, [s.title for s in sections], sum(s.images for s in sections))
