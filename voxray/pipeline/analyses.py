"""The attribution analyses of the evaluate stage, each ``fn(ctx) -> info`` writing its own
metrics/ and curves/ parts (deterministic names, so a rerun replaces them):

- identification: Top-1 of the classification model on its speakers' held-out utterances;
- faithfulness: deletion / insertion curves (Li et al. 2022) with Top-1 and with the verification
score,
  against random and time-aligned masking, after energy VAD; pixel flipping (Sarvaš 2021);
- multispeaker: Li et al. 2022's A-B, A-B-A, B-A-B, A-B-C localisation and recognition (Table 2);
- sanity: cascading model-parameter and label randomisation (Adebayo et al. 2018);
- gender: Sarvaš 2021's AlexNet gender classifier, LRP pixel flipping, Moore augmentation,
retraining.

They work on fixed-length centre crops (``train.segment_s``) so that every batch has one
shape, as Li et al. 2022's 200-frame inputs do.

A model evaluated on a corpus whose speakers it was not trained on has no class for them:
identification and the multi-speaker test are skipped, and faithfulness and the sanity checks
explain the embedder (Traversal) instead of the classifier's target speaker, without the Top-1
scorer and label randomisation. Each skip returns its reason in the part's info
(``skipped`` for a whole part, ``partly_skipped`` for what a part left out), which the
evaluate stage logs and the report shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow.compute as pc
import torch
from torch import Tensor

from voxray import schema
from voxray.attribution import Pathway, attribute, get_attributor, method_pathways
from voxray.attribution.cam_layers import to_input_grid
from voxray.attribution.hooks import inference_state
from voxray.config import ModelConfig, VoxrayConfig, replace
from voxray.eval import multispeaker
from voxray.eval.faithfulness import cosine_score, masking_curves, pixel_flipping, top1_score
from voxray.eval.sanity import cascading_randomisation, flag_insensitive, label_randomisation
from voxray.features import feature_energy
from voxray.log import get_logger
from voxray.mask import moore_replace
from voxray.models import build_classifier
from voxray.models.checkpoint import LoadedModel, load_model
from voxray.pipeline.context import MANIFEST, METRICS, RunContext
from voxray.pipeline.datasets import read_features
from voxray.pipeline.front_ends import base_front_end
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.verification_eval import write_curve
from voxray.schema import MetricRow
from voxray.train.data import centre_start, loop_crop, segment_frames
from voxray.train.local import accuracy, fit_classifier

log = get_logger(__name__)
#: forward passes per model call in the curves: CPU convolutions are memory-bound on big batches
ROWS_PER_CALL = {"cpu": 8, "cuda": 256}


@dataclass
class Crops:
    """Fixed-length centre crops of some utterances, with their class labels."""

    utt_ids: list[str]
    feats: Tensor
    #: class ids ``(B,)``; None for crops of speakers the model has no class for.
    labels: Tensor | None


def crops(
    ctx: RunContext,
    kind: str,
    split: str,
    n: int,
    frames: int,
    label_of: Callable[[str], int | None] | None,
) -> Crops:
    """Up to ``n`` utterances of ``split`` taken round-robin over speakers (deterministic):
    those ``label_of`` gives a class, or any (unlabelled) when ``label_of`` is None."""
    m = ctx.out.read_table(
        MANIFEST, columns=["utt_id", "speaker_id"], filter=pc.field("split") == split
    )
    by_spk: dict[str, list[str]] = {}
    for u, s in sorted(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    ):
        if label_of is None or label_of(u) is not None:
            by_spk.setdefault(s, []).append(u)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < n and any(depth < len(v) for v in by_spk.values()):
        chosen += [v[depth] for v in by_spk.values() if depth < len(v)][: n - len(chosen)]
        depth += 1
    t = read_features(ctx.out, kind, chosen)
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
    ids = [u for u in chosen if u in mats]
    x = (
        np.stack([loop_crop(mats[u], centre_start(mats[u].shape[0], frames), frames) for u in ids])
        if ids
        else np.zeros((0, frames, 0))
    )
    labels = (
        None if label_of is None else torch.tensor([label_of(u) for u in ids], dtype=torch.long)
    )
    return Crops(ids, torch.from_numpy(x.astype(np.float32)), labels)


def _loaded(ctx: RunContext) -> LoadedModel:
    return load_model(base_model(ctx).path, ctx.cfg.corpus.s3)


def _frames(cfg: VoxrayConfig, seconds: float | None = None) -> int:
    return segment_frames(seconds or cfg.train.segment_s, cfg.features.frame_shift_ms)


def _speaker_labels(loaded: LoadedModel) -> Callable[[str], int | None]:
    index = {s: i for i, s in enumerate(loaded.speakers)}
    return lambda u: index.get(u.split("/", 1)[0])


def _write_metrics(ctx: RunContext, name: str, rows: list[MetricRow]) -> None:
    """One analysis's metrics/ part (a deterministic name: a rerun replaces it)."""
    ctx.out.write_table(f"{METRICS}/{name}.parquet", schema.metrics_table(rows))


def unknown_speakers(loaded: LoadedModel, where: str) -> str:
    """Why an analysis that needs the model's classes cannot run on ``where``."""
    return (
        f"no utterance of {where} is of one of the model's {len(loaded.speakers)} training "
        "speakers (the corpus's speakers are disjoint from the model's), so Top-1 and the "
        "classifier's target speaker are undefined"
    )


def explained_pathway(method: str, labelled: bool = True) -> Pathway:
    """The pathway the analyses explain with: the classification output (the model's decision)
    for utterances of the classifier's speakers, else the embedder (Traversal)."""
    wanted = Pathway.CLASSIFICATION if labelled else Pathway.TRAVERSAL
    return method_pathways(method, (wanted,))[0]


def explainable(methods: Sequence[str], labelled: bool) -> tuple[list[str], dict[str, str]]:
    """The methods that can explain these utterances, and why the others cannot: without
    class labels only the methods with a Traversal pathway (CAM and LRP explain a class)."""
    if labelled:
        return list(methods), {}
    keep = [m for m in methods if Pathway.TRAVERSAL in get_attributor(m).pathways]
    why = "explains the classifier's target speaker, undefined for speakers it was not trained on"
    return keep, {m: why for m in methods if m not in keep}


def _maps(
    model: torch.nn.Module, feats: Tensor, method: str, target: Tensor | None, params: Any
) -> Tensor:
    """Maps ``(B, T, F)`` of ``method``: for the ``target`` classes, or of the embedder (None)."""
    pathway = explained_pathway(method, labelled=target is not None)
    return attribute(model, feats, method, pathway, params=params, target=target).maps.detach()


def speech_mask(feats: Tensor, cfg: VoxrayConfig) -> np.ndarray:
    """Energy VAD on the stored features (Li et al. 2022 removes non-speech before
    deletion/insertion).

    Features may be mean-normalised (CMN), which removes absolute levels, so the rule is
    relative: a frame is speech when its log-mel energy is within ``vad_energy_threshold``
    nats (5.5, about 24 dB) of the utterance's loud frames (95th percentile). An item where
    that marks nothing keeps all its frames.
    """
    out = []
    for f in feats:
        e = feature_energy(f).cpu().numpy()
        speech = e > np.percentile(e, 95) - cfg.features.vad_energy_threshold
        out.append(speech if speech.any() else np.ones_like(speech))
    return np.stack(out)


# --------------------------------------------------------------------------- identification


def run_identification(ctx: RunContext) -> dict[str, Any]:
    loaded = _loaded(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    m = ctx.out.read_table(
        MANIFEST, columns=["utt_id", "iden_split"], filter=pc.field("split") == "train"
    )
    iden_test = [
        u
        for u, s in zip(
            m.column("utt_id").to_pylist(), m.column("iden_split").to_pylist(), strict=True
        )
        if s == 3
    ]
    label_of = _speaker_labels(loaded)
    ids = [u for u in (iden_test or m.column("utt_id").to_pylist()) if label_of(u) is not None][
        :1000
    ]
    if not ids:
        return {"skipped": unknown_speakers(loaded, "the train split")}
    t = read_features(ctx.out, loaded.front_end.name, ids)
    model = loaded.classifier.eval()
    hits = []
    with torch.inference_mode():
        for u, x in zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True):
            hits.append(int(model(torch.from_numpy(x)[None]).argmax(1).item() == label_of(u)))
    # utterances the model trained on are marked as such: Top-1 on them is not a held-out figure
    lst = (
        "iden_split3"
        if iden_test and ctx.cfg.train.exclude_iden_test
        else ("iden_split3_seen" if iden_test else "train_seen")
    )
    _write_metrics(
        ctx,
        f"identification-{loaded.name}",
        [
            MetricRow(
                base_model(ctx).name,
                "none",
                lst,
                "",
                "top1",
                float(np.mean(hits)) if hits else float("nan"),
            ),
            MetricRow(base_model(ctx).name, "none", lst, "", "utterances", float(len(hits))),
        ],
    )
    return {"top1": float(np.mean(hits)) if hits else None, "utterances": len(hits), "list": lst}


# --------------------------------------------------------------------------- faithfulness


def labelled_crops(
    ctx: RunContext, loaded: LoadedModel, n: int, frames: int
) -> tuple[Crops, dict[str, str]]:
    """Up to ``n`` train-split crops of the model's speakers, with their classes; when the
    corpus has none of them (or the model has no head), unlabelled crops of its own speakers
    (train split, else test: a corpus of test speakers only) and why the analyses that need
    classes are left out."""
    kind = loaded.front_end.name
    data = crops(ctx, kind, "train", n, frames, _speaker_labels(loaded))
    if data.utt_ids:
        return data, {}
    why = unknown_speakers(loaded, "the train split")
    unlabelled = crops(ctx, kind, "train", n, frames, None)
    if not unlabelled.utt_ids:
        unlabelled = crops(ctx, kind, "test", n, frames, None)
    return unlabelled, {"top1": why}


def run_faithfulness(ctx: RunContext) -> dict[str, Any]:
    cfg, fc = ctx.cfg, ctx.cfg.eval.faithfulness
    loaded = _loaded(ctx)  # without a head: Traversal maps of unlabelled crops
    name = base_model(ctx).name
    data, partly_skipped = labelled_crops(ctx, loaded, fc.max_utterances, _frames(cfg))
    labelled = data.labels is not None
    methods, left_out = explainable(fc.methods or cfg.attribution.methods, labelled)
    partly_skipped |= left_out
    model = loaded.classifier.eval()
    with torch.inference_mode():
        refs = model.embedder(data.feats)
    speech = speech_mask(data.feats, cfg)
    rows = ROWS_PER_CALL[data.feats.device.type]

    def scorers(n: int) -> dict[str, Callable[[Tensor], Tensor]]:
        """Top-1 of the true class (when known) and the verification score, on the first n."""
        out = {"verification": cosine_score(model.embedder, refs[:n])}
        if data.labels is not None:
            out = {"top1": top1_score(model, data.labels[:n]), **out}
        return out

    metrics: list[MetricRow] = []
    aucs: dict[str, float] = {}

    def curves_of(label: str, x: Tensor, maps: Tensor | None) -> None:
        """Deletion/insertion per scorer and Top-1 pixel flipping (Zhang et al. 2023's random
        reference too)
        in the order of ``maps``, or of the reference ``label`` when ``maps`` is None."""
        n = x.shape[0]
        order = "saliency" if maps is not None else label
        for scorer, fn in scorers(n).items():
            with torch.inference_mode():
                curves = masking_curves(
                    x,
                    maps,
                    fn,
                    fc.steps,
                    order=order,
                    speech=speech[:n],
                    seed=cfg.seed,
                    max_rows=rows,
                )
            for mode, curve in curves.items():
                write_curve(ctx, mode, name, label, scorer, curve.fractions, curve.scores)
                metrics.append(
                    MetricRow(name, label, "faithfulness", scorer, f"{mode}_auc", curve.auc)
                )
                if maps is not None:
                    aucs[f"{label}:{scorer}:{mode}"] = curve.auc
        if data.labels is None or order == "time_aligned":
            return
        flip_order = "relevance" if maps is not None else "random"
        with torch.inference_mode():
            flips = pixel_flipping(
                x, maps, scorers(n)["top1"], fc.flip_fractions, flip_order, cfg.seed, rows
            )
        write_curve(ctx, "pixel_flipping", name, label, "top1", flips.fractions, flips.scores)
        metrics.extend(
            MetricRow(name, label, "pixel_flipping", "top1", f"acc@{q:g}", s)
            for q, s in zip(flips.fractions, flips.scores, strict=True)
        )

    for order in ("random", "time_aligned"):
        curves_of(order, data.feats, None)
    for method in methods:
        n = len(data.utt_ids)
        if get_attributor(method).perturbs:
            n = min(n, cfg.attribution.perturbation_max_utterances)
        x, y = data.feats[:n], None if data.labels is None else data.labels[:n]
        maps = _maps(model, x, method, y, cfg.attribution)
        curves_of(f"{method}/{explained_pathway(method, labelled)}", x, maps)
    _write_metrics(ctx, f"faithfulness-{name}", metrics)
    info: dict[str, Any] = {"utterances": len(data.utt_ids), "methods": methods, "aucs": aucs}
    return info | ({"partly_skipped": partly_skipped} if partly_skipped else {})


# --------------------------------------------------------------------------- multi-speaker


def layer_specs(layers: list[str]) -> list[str]:
    """Single layers, then cumulative averages from the top (Li et al. 2022: S4, S4+S3, S4+S3+S2,
    ...)."""
    top_down = layers[::-1]
    return layers + ["+".join(top_down[: k + 1]) for k in range(1, len(top_down))]


def run_multispeaker(ctx: RunContext) -> dict[str, Any]:
    cfg, mc = ctx.cfg, ctx.cfg.eval.multispeaker
    loaded = _loaded(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    name = base_model(ctx).name
    model = loaded.classifier.eval()
    label_of = _speaker_labels(loaded)
    m = ctx.out.read_table(
        MANIFEST, columns=["utt_id", "speaker_id"], filter=pc.field("split") == "train"
    )
    per_speaker: dict[str, list[str]] = {}
    for u, s in sorted(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    ):
        per_speaker.setdefault(s, [])
        if len(per_speaker[s]) < 4:
            per_speaker[s].append(u)
    t = read_features(ctx.out, loaded.front_end.name, [u for v in per_speaker.values() for u in v])
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
    utterances = {s: [mats[u] for u in v if u in mats] for s, v in per_speaker.items()}
    labels = {s: label_of(v[0]) for s, v in per_speaker.items() if v and label_of(v[0]) is not None}
    if not labels:
        return {"skipped": unknown_speakers(loaded, "the train split")}
    layers = [n for n in loaded.classifier.embedder.layers() if n not in ("pool", "fc")]
    methods = [mth for mth in mc.methods if Pathway.CAM in get_attributor(mth).pathways]

    def saliency_fn(
        model_: torch.nn.Module, feats: Tensor, targets: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        out = {}
        frames, bins = feats.shape[1:]
        for mth in methods:
            with inference_state(model_):
                raw = get_attributor(mth)(model_, cfg.attribution).layer_maps(
                    feats.detach(), targets, layers
                )
            out[mth] = {k: to_input_grid(v, frames, bins).detach() for k, v in raw.items()}
        return out

    rows = multispeaker.run_multispeaker(
        model,
        utterances,
        labels,
        mc.cases,
        saliency_fn,
        np.random.default_rng(cfg.seed),
        mc.trials_per_case,
        _frames(cfg, mc.segment_s),
        layer_specs(layers),
    )
    metrics: list[MetricRow] = []
    for case in mc.cases:
        first = next((r for r in rows if r.case == case), None)
        if first is not None:
            metrics.append(
                MetricRow(
                    name, "original", "multispeaker", "", "top1", first.top1_original, case=case
                )
            )
    for r in rows:
        cond = f"{r.method}@{r.layer_spec}"
        metrics += [
            MetricRow(name, cond, "multispeaker", "", metric, value, case=r.case)
            for metric, value in (
                ("top1", r.top1_masked),
                ("precision", r.precision),
                ("recall", r.recall),
            )
        ]
    _write_metrics(ctx, f"multispeaker-{name}", metrics)
    return {"rows": len(rows), "layers": layers, "methods": methods}


# --------------------------------------------------------------------------- sanity checks


def run_sanity(ctx: RunContext) -> dict[str, Any]:
    cfg, sc = ctx.cfg, ctx.cfg.eval.sanity
    loaded = _loaded(ctx)  # without a head: Traversal maps of unlabelled crops
    name = base_model(ctx).name
    model = loaded.classifier.eval()
    label_of = _speaker_labels(loaded)
    data, no_classes = labelled_crops(ctx, loaded, sc.max_utterances, _frames(cfg))
    labelled = data.labels is not None
    methods, partly_skipped = explainable(sc.methods, labelled)
    if sc.label_randomisation and not labelled:
        partly_skipped["label_randomisation"] = no_classes["top1"]
    shuffled = None
    if sc.label_randomisation and labelled:
        train = crops(ctx, loaded.front_end.name, "train", 100000, _frames(cfg), label_of)
        assert train.labels is not None
        perm = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(len(train.labels)))
        shuffled = build_classifier(
            loaded.cfg, loaded.input_dim, loaded.classifier.num_classes, **loaded.options
        )
        fit_classifier(
            shuffled,
            train.feats,
            train.labels[perm],
            sc.label_epochs,
            cfg.train.batch_size,
            cfg.train.lr,
            cfg.seed,
        )
    curves: dict[str, Any] = {}
    rows: list[MetricRow] = []
    for method in methods:

        def fn(mdl: torch.nn.Module, x: Tensor, method: str = method) -> Tensor:
            return _maps(mdl, x, method, data.labels, cfg.attribution)

        cascade = cascading_randomisation(model, data.feats, fn, seed=cfg.seed)
        curves[method] = cascade
        steps = np.arange(len(cascade.blocks), dtype=np.float64)
        write_curve(
            ctx,
            "sanity_cascading",
            name,
            method,
            "spearman",
            steps,
            np.asarray(cascade.spearman_abs),
        )
        write_curve(ctx, "sanity_cascading", name, method, "ssim", steps, np.asarray(cascade.ssim))
        rows += [
            MetricRow(name, method, "sanity", "", "spearman_final", cascade.final.spearman_abs),
            MetricRow(name, method, "sanity", "", "ssim_final", cascade.final.ssim),
        ]
        if shuffled is not None:
            sim = label_randomisation(model, shuffled, data.feats, fn)
            rows.append(MetricRow(name, method, "sanity", "", "label_spearman", sim.spearman_abs))
    flags = flag_insensitive(curves, sc.flag_threshold)
    rows += [MetricRow(name, m, "sanity", "", "flagged", float(f)) for m, f in flags.items()]
    _write_metrics(ctx, f"sanity-{name}", rows)
    info: dict[str, Any] = {
        "flagged": [m for m, f in flags.items() if f],
        "blocks": list(next(iter(curves.values())).blocks) if curves else [],
    }
    return info | ({"partly_skipped": partly_skipped} if partly_skipped else {})


# --------------------------------------------------------------------------- gender (Sarvaš 2021)


def run_gender(ctx: RunContext) -> dict[str, Any]:
    cfg, gc = ctx.cfg, ctx.cfg.eval.gender
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "gender", "split"])
    gender = {
        u: g
        for u, g in zip(m.column("utt_id").to_pylist(), m.column("gender").to_pylist(), strict=True)
        if g in ("m", "f")
    }
    if len({*gender.values()}) < 2:
        return {"skipped": "the corpus metadata has no two genders"}
    label_of = lambda u: {"m": 0, "f": 1}.get(gender.get(u, ""))  # noqa: E731
    frames = _frames(cfg, gc.segment_s)
    kind = base_front_end(ctx).name
    train = crops(ctx, kind, "train", 100000, frames, label_of)
    test = crops(ctx, kind, "test", 100000, frames, label_of)
    if len(test.utt_ids) < 2 or len(train.utt_ids) < 4:
        return {"skipped": "too few utterances with gender labels"}
    # its own AlexNet: of the speaker model's settings only the embedding size and head carry over
    model_cfg = ModelConfig(
        arch="alexnet",
        embedding_dim=cfg.model.embedding_dim,
        feature_kind=cfg.model.feature_kind,
        head=replace(cfg.model.head, kind="softmax"),
    )
    torch.manual_seed(cfg.seed)
    net = build_classifier(model_cfg, train.feats.shape[2], 2, input_frames=frames)
    fit_classifier(net, train.feats, train.labels, gc.epochs, cfg.train.batch_size, gc.lr, cfg.seed)
    fractions = sorted({0.0, gc.top_fraction, *cfg.eval.faithfulness.flip_fractions})
    rows: list[MetricRow] = []
    info: dict[str, Any] = {}

    def evaluate(model: torch.nn.Module, label: str) -> None:
        maps = _maps(model, test.feats, "lrp_0", test.labels, cfg.attribution)
        score = top1_score(model, test.labels)
        with torch.inference_mode():
            lrp = pixel_flipping(test.feats, maps, score, fractions, order="relevance")
            rnd = pixel_flipping(test.feats, None, score, fractions, order="random", seed=cfg.seed)
        for cond, curve in (("lrp_0", lrp), ("random", rnd)):
            write_curve(ctx, "pixel_flipping", label, cond, "gender", curve.fractions, curve.scores)
            rows.extend(
                MetricRow(label, cond, "gender", "", f"acc@{q:g}", s)
                for q, s in zip(curve.fractions, curve.scores, strict=True)
            )
        info[label] = {
            f"acc@{q:g}": float(s) for q, s in zip(lrp.fractions, lrp.scores, strict=True)
        }

    evaluate(net, "alexnet-gender")
    # Sarvaš 2021 §4.3: the top 0.5% relevant bins of each training crop replaced by their
    # Moore-neighbourhood
    # mean, then the trained model trained again on the augmented data
    train_maps = _maps(net, train.feats, "lrp_0", train.labels, cfg.attribution).numpy()
    augmented = torch.from_numpy(
        np.stack(
            [
                moore_replace(x, a, gc.top_fraction)
                for x, a in zip(train.feats.numpy(), train_maps, strict=True)
            ]
        ).astype(np.float32)
    )
    both = gc.retrain_on == "original+augmented"
    fit_classifier(
        net,
        torch.cat([train.feats, augmented]) if both else augmented,
        torch.cat([train.labels, train.labels]) if both else train.labels,
        gc.epochs,
        cfg.train.batch_size,
        gc.lr,
        cfg.seed + 1,
    )
    evaluate(net, "alexnet-gender-augmented")
    info["test_accuracy"] = accuracy(net, test.feats, test.labels)
    _write_metrics(ctx, "gender", rows)
    return info


#: (name, function, enabled(cfg)) in the order the evaluate stage runs them.
ANALYSES: tuple[
    tuple[str, Callable[[RunContext], dict[str, Any]], Callable[[VoxrayConfig], bool]], ...
] = (
    ("identification", run_identification, lambda c: c.eval.identification),
    ("faithfulness", run_faithfulness, lambda c: c.eval.faithfulness.enabled),
    ("multispeaker", run_multispeaker, lambda c: c.eval.multispeaker.enabled),
    ("sanity", run_sanity, lambda c: c.eval.sanity.enabled),
    ("gender", run_gender, lambda c: c.eval.gender.enabled),
)
