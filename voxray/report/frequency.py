"""Where on the frequency axis the attributions put their importance (Zhang et al. 2023's F0/formant
claim).

Attribution maps are ``(T, F)`` over fbank bins; ``attributions/`` stores each map's
frequency profile ``(F,)`` (mean |attribution| per bin over frames). Here the profiles are
put on a Hz axis (the Kaldi mel-bin centres of ``voxray.features.mel_center_frequencies``)
and compared with the regions the seed names: the fundamental F0 (~70-400 Hz) and the
first two formants (F1 ~300-1000 Hz, F2 ~1000-3000 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: (label, low Hz, high Hz) of the regions shaded in the profile plot.
VOICE_REGIONS: tuple[tuple[str, float, float], ...] = (
    ("F0", 70.0, 400.0),
    ("F1", 300.0, 1000.0),
    ("F2", 1000.0, 3000.0),
)
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


def mean_profiles(profiles: pd.DataFrame) -> dict[str, np.ndarray]:
    """Mean normalised profile per ``method/pathway``: ``{label: (F,)}``, each summing to 1.

    ``profiles`` has columns method, pathway and freq_profile (one ``(F,)`` array per
    utterance). Each utterance's |profile| is scaled to sum 1 first, so every utterance
    weighs the same whatever its length or the method's scale; empty or all-zero profiles
    are skipped.
    """
    out: dict[str, np.ndarray] = {}
    for (method, pathway), group in profiles.groupby(["method", "pathway"], sort=True):
        rows = [np.abs(np.asarray(p, dtype=np.float64)) for p in group["freq_profile"]]
        rows = [r / r.sum() for r in rows if r.size and np.isfinite(r).all() and r.sum() > 0]
        if not rows or len({r.size for r in rows}) != 1:
            continue
        out[f"{method}/{pathway}"] = np.mean(rows, axis=0)
    return out


@dataclass(frozen=True)
class BandConcentration:
    """How much more importance a fbank bin inside the voice band carries than one outside."""

    label: str
    inside_share: float
    bin_share: float
    ratio: float


def voice_band_concentration(
    profile: np.ndarray, hz: np.ndarray, label: str
) -> BandConcentration | None:
    """Mean importance per bin inside ``VOICE_BAND`` over the mean per bin outside it.

    ``ratio > 1`` means the map concentrates on F0 and formants (bins are mel-spaced, so a
    per-bin comparison is already weighted as the model sees the spectrum). None when
    every bin falls inside (or outside) the band, or the profile has no importance.
    """
    p = np.abs(np.asarray(profile, dtype=np.float64))
    if p.shape != hz.shape:
        raise ValueError(
            f"profile {label!r} has {p.size} bins but the frequency axis has {hz.size}"
        )
    inside = (hz >= VOICE_BAND[0]) & (hz <= VOICE_BAND[1])
    if inside.all() or not inside.any() or p.sum() <= 0:
        return None
    mean_out = p[~inside].mean()
    ratio = float(p[inside].mean() / mean_out) if mean_out > 0 else float("inf")
    return BandConcentration(label, float(p[inside].sum() / p.sum()), float(inside.mean()), ratio)


def band_shares(profiles: dict[str, np.ndarray], hz: np.ndarray) -> pd.DataFrame:
    """Share of each profile's importance per band of ``BANDS`` (rows: labels; columns: bands),
    plus the row ``uniform``: the share a map with equal importance in every bin would give."""
    masks = [(hz >= lo) & (hz < hi) for _, lo, hi in BANDS]
    rows = {"uniform": [float(m.mean()) for m in masks]}
    for label, p in profiles.items():
        p = np.abs(np.asarray(p, dtype=np.float64))
        total = p.sum()
        rows[label] = [float(p[m].sum() / total) if total > 0 else 0.0 for m in masks]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[b[0] for b in BANDS])
