"""The attributions' frequency profiles, averaged per method, and the voice regions they are
read against (Zhang et al. 2023's F0/formant claim).

Attribution maps are ``(T, F)`` over fbank bins; ``attributions/`` stores each map's
frequency profile ``(F,)`` (mean |attribution| per bin over frames). The frequency and the
trial sections show the mean profiles on a Hz axis (the Kaldi mel-bin centres of
``voxray.features.mel_center_frequencies``) with the regions the seed names shaded: the
fundamental F0 (~70-400 Hz) and the first two formants (F1 ~300-1000 Hz, F2 ~1000-3000 Hz).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: (label, low Hz, high Hz) of the regions shaded in the profile plot.
VOICE_REGIONS: tuple[tuple[str, float, float], ...] = (
    ("F0", 70.0, 400.0),
    ("F1", 300.0, 1000.0),
    ("F2", 1000.0, 3000.0),
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
