"""Where on the frequency axis the attributions put their importance (Zhang et al. 2023's
F0/formant claim): each method's mean frequency profile, its importance per band, and the
verdict on whether F0 and the formants carry the most.

The profiles (``voxray.report.profiles``) are put on the Hz axis of the fbank bins and
compared with the regions the seed names: the fundamental F0 (~70-400 Hz) and the first two
formants (F1 ~300-1000 Hz, F2 ~1000-3000 Hz).

Only the bins that carry signal in this corpus are compared (``signal_bins``): in band-limited
recordings (telephone speech at 8 kHz, upsampled to 16 kHz) the bins above 4 kHz hold nothing
for any map to find, and counting them "outside" would let every map pass the claim.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from voxray.config.evaluation import IntervalConfig
from voxray.eval.intervals import ONE_SPEAKER, speaker_bootstrap
from voxray.log import get_logger
from voxray.report.html import Image, Section
from voxray.report.load import speakers
from voxray.report.names import method_pathway_name
from voxray.report.plots import figure, frequency_profile_plot, legend, styled, to_png
from voxray.report.profiles import mean_profiles
from voxray.report.sections.base import ReportContext, missing, section
from voxray.report.verdicts import Check, Verdict, against_bound, verdict

log = get_logger(__name__)

TITLE = "Where the attributions look: frequency-importance profiles (Zhang et al. 2023)"
INTRO = (
    "Each method's importance per fbank bin, averaged over utterances (each utterance's "
    "profile scaled to sum 1), on the bins' centre frequencies; shaded: the fundamental F0 "
    "(~70-400 Hz) and the first two formants F1 (~300-1000 Hz) and F2 (~1000-3000 Hz). The "
    "bars sum the importance per band; the black tick is what a map with equal importance "
    "in every bin that carries signal in this corpus would give."
)

#: a mean profile whose range over the signal bins is below this fraction of its mean is flat:
#: the map has no frequency axis (a CAM of a time-only layer, spread over the bins).
FLAT = 1e-6

#: the union of the voice regions: where Zhang et al. 2023 says the importance concentrates.
VOICE_BAND: tuple[float, float] = (70.0, 3000.0)
#: non-overlapping bands for the band-importance bars: (label, low Hz, high Hz).
BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 70 Hz", 0.0, 70.0),
    ("F0 70-300 Hz", 70.0, 300.0),
    ("F1 300-1000 Hz", 300.0, 1000.0),
    ("F2 1-3 kHz", 1000.0, 3000.0),
    ("> 3 kHz", 3000.0, np.inf),
)


#: a bin whose features vary (std over the sampled frames) less than this fraction of the
#: 90th-percentile bin's carries no signal in this corpus (a percentile near the top, so that a
#: corpus with most bins silent still has its reference in the bins that carry signal).
SILENT_SPREAD = 0.25


def signal_bins(spread: np.ndarray | None, n_bins: int) -> np.ndarray:
    """``(F,)`` True where a bin carries signal: its spread (``RunOutputs.bin_spread``) is at
    least ``SILENT_SPREAD`` of the 90th-percentile bin's; all True when the spread is unknown."""
    if spread is None or spread.shape != (n_bins,):
        return np.ones(n_bins, dtype=bool)
    return np.asarray(spread) >= SILENT_SPREAD * float(np.percentile(spread, 90))


def silent_note(hz: np.ndarray, signal: np.ndarray) -> str:
    """What the comparison left out: the silent bins' frequencies, or nothing."""
    if signal.all():
        return ""
    silent = hz[~signal]
    return (
        f"{silent.size} of {hz.size} bins ({silent.min():.0f}-{silent.max():.0f} Hz) carry no "
        f"signal in this corpus (feature spread < {SILENT_SPREAD:g} x the 90th-percentile bin's) "
        "and are left out of both sides"
    )


@dataclass(frozen=True)
class BandConcentration:
    """How much more importance a fbank bin inside the voice band carries than one outside."""

    label: str
    inside_share: float
    bin_share: float
    ratio: float


def voice_band_concentration(
    profile: np.ndarray, hz: np.ndarray, label: str, signal: np.ndarray | None = None
) -> BandConcentration | None:
    """Mean importance per bin inside ``VOICE_BAND`` over the mean per bin outside it, over the
    bins that carry signal (``signal``; all when None).

    ``ratio > 1`` means the map concentrates on F0 and formants (bins are mel-spaced, so a
    per-bin comparison is already weighted as the model sees the spectrum). None when
    every signal bin falls inside (or outside) the band, or the profile has no importance.
    """
    p = np.abs(np.asarray(profile, dtype=np.float64))
    if p.shape != hz.shape:
        raise ValueError(
            f"profile {label!r} has {p.size} bins but the frequency axis has {hz.size}"
        )
    signal = np.ones(hz.shape, dtype=bool) if signal is None else signal
    voice = (hz >= VOICE_BAND[0]) & (hz <= VOICE_BAND[1])
    inside, outside = voice & signal, ~voice & signal
    if not inside.any() or not outside.any() or p[signal].sum() <= 0:
        return None
    mean_out = p[outside].mean()
    ratio = float(p[inside].mean() / mean_out) if mean_out > 0 else float("inf")
    share = float(p[inside].sum() / p[signal].sum())
    return BandConcentration(label, share, float(inside.sum() / signal.sum()), ratio)


def band_shares(
    profiles: dict[str, np.ndarray], hz: np.ndarray, signal: np.ndarray | None = None
) -> pd.DataFrame:
    """Share of each profile's importance per band of ``BANDS`` (rows: labels; columns: bands),
    plus the row ``uniform``: the share a map with equal importance in every bin that carries
    signal (``signal``; all when None) would give."""
    masks = [(hz >= lo) & (hz < hi) for _, lo, hi in BANDS]
    signal = np.ones(hz.shape, dtype=bool) if signal is None else signal
    rows = {"uniform": [float((m & signal).sum() / signal.sum()) for m in masks]}
    for label, p in profiles.items():
        p = np.abs(np.asarray(p, dtype=np.float64))
        total = p.sum()
        rows[label] = [float(p[m].sum() / total) if total > 0 else 0.0 for m in masks]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[b[0] for b in BANDS])


@styled
def band_plot(shares: pd.DataFrame) -> bytes:
    """Grouped bars: each method's share of importance per band; the black tick is the share a
    uniform map would give (``shares`` rows: labels and ``uniform``; columns: bands)."""
    methods = [m for m in shares.index if m != "uniform"]
    bands = list(shares.columns)
    fig, axes = figure(height_in=3.2)
    ax = axes[0, 0]
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(bands))
    for i, m in enumerate(methods):
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            100 * shares.loc[m].to_numpy(),
            width,
            color=f"C{i % 10}",
            label=method_pathway_name(m),
        )
    if "uniform" in shares.index:
        ax.scatter(
            x,
            100 * shares.loc["uniform"].to_numpy(),
            marker="_",
            s=900,
            color="black",
            zorder=3,
            label="uniform map",
        )
    ax.set_xticks(x, bands)
    ax.set_ylabel("Share of importance (%)")
    ax.set_title("Importance per frequency band")
    legend(ax, outside=True)
    return to_png(fig)


def _unit_profiles(
    group: pd.DataFrame, hz: np.ndarray, label: str, signal: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """A method's |profiles| over ``hz``'s bins, each summing to 1 ``(U, F)``, and their
    utterances; None when it has none over these bins, or the first has no importance on the
    bins that carry signal."""
    rows = [np.abs(np.asarray(p, dtype=np.float64)) for p in group["freq_profile"]]
    keep = [i for i, r in enumerate(rows) if r.shape == hz.shape and r.sum() > 0]
    if not keep or voice_band_concentration(rows[keep[0]], hz, label, signal) is None:
        return None
    unit = np.stack([rows[i] / rows[i].sum() for i in keep])
    return unit, group["utt_id"].astype(str).to_numpy()[keep]


def formant_verdict(
    profiles: pd.DataFrame | None,
    manifest: pd.DataFrame | None,
    hz: np.ndarray | None,
    intervals: IntervalConfig,
    spread: np.ndarray | None = None,
) -> Verdict:
    """Zhang et al. 2023: per method, the mean importance per bin inside 70-3000 Hz is above the
    mean outside, over the bins that carry signal (``signal_bins`` of the features' ``spread``):
    the ratio's interval (utterances resampled by speaker) lies above 1."""
    claim = "Zhang et al. 2023: F0 and the formants (70-3000 Hz) carry the most importance"
    if hz is None:
        return Verdict(
            claim, "not computed", "the attributions are not over mel filterbank bins (no Hz axis)"
        )
    if profiles is None or profiles.empty:
        return Verdict(claim, "not computed", "no frequency profiles in attributions/")
    signal = signal_bins(spread, hz.size)
    note = silent_note(hz, signal)
    if voice_band_concentration(signal.astype(float), hz, "signal", signal) is None:
        why = f"the bins that carry signal are not both inside and outside 70-3000 Hz ({note})"
        return Verdict(claim, "not computed", why)
    speaker_of = speakers(manifest)
    checks: list[Check] = []
    methods: list[str] = []
    flat: list[str] = []
    for (name, pathway), group in profiles.groupby(["method", "pathway"], sort=True):
        label = f"{name}/{pathway}"
        found = _unit_profiles(group, hz, label, signal)
        if found is None:
            continue
        unit, utts = found
        if np.ptp(unit.mean(axis=0)[signal]) <= FLAT * unit.mean():
            flat.append(method_pathway_name(label))  # e.g. a CAM of a 1-D (time-only) layer
            continue

        def ratio(idx: np.ndarray, unit: np.ndarray = unit, label: str = label) -> float:
            found = voice_band_concentration(unit[idx].mean(axis=0), hz, label, signal)
            return found.ratio if found is not None else float("nan")

        ci = speaker_bootstrap(
            ratio,
            [speaker_of.get(u, u) for u in utts],
            confidence=intervals.confidence,
            n_resamples=intervals.resamples,
            seed=intervals.seed,
        )
        checks.append(
            against_bound(f"{method_pathway_name(label)} inside/outside", ci, 1.0, "above", 1, "x")
        )
        methods.append(ci.method)
    if flat:
        note = "; ".join(
            filter(None, [note, f"{', '.join(flat)}: the same in every bin, no test of the claim"])
        )
    # the interval method of the checks that have one (one speaker's rows have none)
    method = next((m for m in methods if ONE_SPEAKER not in m), methods[0] if methods else "")
    found = verdict(claim, checks, note or "no frequency profiles in attributions/", method)
    return replace(found, detail=f"{found.detail}; {note}") if note and checks else found


@section("frequency", TITLE, INTRO, order=60)
def frequency(ctx: ReportContext, s: Section) -> None:
    p = ctx.out.profiles
    # trial maps have their own section (they explain a pair, not one utterance)
    profiles = mean_profiles(p[p["pathway"] != "trial"]) if p is not None else {}
    hz = ctx.hz
    if hz is not None and profiles and any(len(p) != len(hz) for p in profiles.values()):
        log.warning(
            "report: profiles have %s bins, the model's front-end %d; no Hz axis",
            sorted({len(p) for p in profiles.values()}),
            len(hz),
        )
        hz = None
    shown = p[p["pathway"] != "trial"] if p is not None else None
    spread = ctx.out.bin_spread
    s.verdicts.append(formant_verdict(shown, ctx.out.manifest, hz, ctx.cfg.eval.intervals, spread))
    if not profiles:
        s.blocks.append(missing("no attribution frequency profiles in attributions/"))
        return
    s.blocks.append(
        Image(
            frequency_profile_plot(profiles, hz),
            "Mean frequency-importance profile per method",
        )
    )
    if hz is not None:
        s.blocks.append(
            Image(
                band_plot(band_shares(profiles, hz, signal_bins(spread, hz.size))),
                "Importance per frequency band per method",
            )
        )
