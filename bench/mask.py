"""Masking throughput: voxray's vectorised rules against the per-bin loops Zhang et al. 2023 and
Sarvaš 2021 describe (threshold each bin of attribution x input; replace each top bin by the mean of
its Moore neighbourhood), on the same utterances.

    python -m bench mask [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import best_of, emit, peak_rss_mb
from voxray.config import MaskCondition
from voxray.mask import apply_condition


def naive_threshold(x: np.ndarray, a: np.ndarray, tau: float) -> np.ndarray:
    out = np.zeros_like(x)
    peak = np.abs(a).max()
    for t in range(x.shape[0]):
        for f in range(x.shape[1]):
            if abs(a[t, f]) / peak > tau:
                out[t, f] = x[t, f] * a[t, f] / peak
    return out


def naive_moore(x: np.ndarray, a: np.ndarray, fraction: float) -> np.ndarray:
    out = x.copy()
    k = int(round(fraction * a.size))
    flat = np.argsort(-a, axis=None, kind="stable")[:k]
    for idx in flat:
        t, f = divmod(int(idx), x.shape[1])
        if a[t, f] <= 0:
            continue
        vals = [
            x[i, j]
            for i in range(t - 1, t + 2)
            for j in range(f - 1, f + 2)
            if (i, j) != (t, f) and 0 <= i < x.shape[0] and 0 <= j < x.shape[1]
        ]
        out[t, f] = sum(vals) / len(vals)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n = 8 if args.quick else 64
    data = [
        (
            rng.standard_normal((400, 80)).astype(np.float32),
            rng.standard_normal((400, 80)).astype(np.float32),
        )
        for _ in range(n)
    ]
    thr = MaskCondition("integrated_gradients", "classification", "threshold", 0.1)
    moore = MaskCondition("lrp_0", "lrp", "moore", top_fraction=0.005)
    v_thr = best_of(lambda: [apply_condition(x, a, thr, "abs_max") for x, a in data], 3)
    v_moore = best_of(lambda: [apply_condition(x, a, moore, "abs_max") for x, a in data], 3)
    n_thr = best_of(lambda: [naive_threshold(x, a, 0.1) for x, a in data], 1)
    n_moore = best_of(lambda: [naive_moore(x, a, 0.005) for x, a in data], 1)
    for x, a in data[:2]:
        np.testing.assert_allclose(
            apply_condition(x, a, thr, "abs_max"), naive_threshold(x, a, 0.1), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            apply_condition(x, a, moore, "abs_max"), naive_moore(x, a, 0.005), rtol=1e-5, atol=1e-6
        )
    print(f"{n} utterances of 4 s x 80 bins")
    print(f"threshold(0.1): voxray {n / v_thr:9.1f} utt/s, per-bin loop {n / n_thr:7.1f} utt/s")
    print(f"moore(0.5%):    voxray {n / v_moore:9.1f} utt/s, per-bin loop {n / n_moore:7.1f} utt/s")
    return emit(
        {
            "bench": "mask",
            "utterances": n,
            "voxray_per_s": n / v_thr,
            "baseline": "per-bin python loop (threshold)",
            "baseline_per_s": n / n_thr,
            "ratio": n_thr / v_thr,
            "moore_voxray_per_s": n / v_moore,
            "moore_baseline_per_s": n / n_moore,
            "moore_ratio": n_moore / v_moore,
            "peak_rss_mb": peak_rss_mb(),
            "device": "cpu",
        }
    )


if __name__ == "__main__":
    main()
