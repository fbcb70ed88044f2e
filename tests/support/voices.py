"""Voice-like test signals shared by the model-equality tests (a model against its own
reference code on the same audio)."""

from __future__ import annotations

import numpy as np


def synthetic_voices(rng: np.random.Generator) -> list[np.ndarray]:
    """Three 16 kHz harmonic 'voices' (0.6, 1.6 and 2.6 s; F0 110, 180, 230 Hz with a 3 Hz
    vibrato) in light noise, float32."""
    waves = []
    for n, f0 in ((9000, 110.0), (25600, 180.0), (41000, 230.0)):
        t = np.arange(n) / 16000
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / 16000
        x = sum(np.sin(k * phase) * np.exp(-k / 6) for k in range(1, 20))
        waves.append((0.05 * x + 0.005 * rng.standard_normal(n)).astype(np.float32))
    return waves
