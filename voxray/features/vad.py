"""Kaldi's energy VAD (``compute-vad``): a frame is speech when enough frames around it have
a log energy above a threshold tied to the utterance's mean log energy.

Kaldi feeds it column 0 of MFCCs made with ``--use-energy=true``, i.e. the raw per-frame log
energy on 16-bit sample values; ``frame_log_energy`` computes exactly that from waveforms.
The default threshold (5.5 in VoxCeleb recipes) assumes int16-scale samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

from voxray.config import FeatureConfig
from voxray.features.frontend import KaldiFrontEnd, KaldiOptions


def energy_vad(
    log_energy: Tensor,
    threshold: float = 5.5,
    mean_scale: float = 0.5,
    frames_context: int = 0,
    proportion: float = 0.6,
) -> Tensor:
    """Speech mask ``(T,)`` bool from per-frame log energies ``(T,)``.

    As Kaldi's ``ComputeVadEnergy``: ``thr = threshold + mean_scale * mean(log_energy)``; frame
    t is speech iff, of the frames ``t - context .. t + context`` inside the utterance, at least
    ``proportion`` of them have log energy > thr. Arithmetic in float32, as in Kaldi.
    """
    if log_energy.dim() != 1:
        raise ValueError(
            f"energy_vad: expected log energies of shape (T,), got {tuple(log_energy.shape)}"
        )
    if mean_scale < 0.0:
        raise ValueError(f"energy_vad: mean_scale must be >= 0, got {mean_scale:g}")
    if frames_context < 0:
        raise ValueError(f"energy_vad: frames_context must be >= 0, got {frames_context}")
    if not 0.0 < proportion < 1.0:
        raise ValueError(f"energy_vad: proportion must be in (0, 1), got {proportion:g}")
    e = log_energy.to(torch.float32)
    num_frames = e.numel()
    if num_frames == 0:
        return torch.zeros(0, dtype=torch.bool, device=e.device)
    thr = torch.tensor(threshold, dtype=torch.float32, device=e.device)
    if mean_scale != 0.0:
        scale = torch.tensor(mean_scale, dtype=torch.float32, device=e.device)
        thr = thr + scale * (e.sum() / num_frames)
    above = (e > thr).to(torch.int64)
    # windowed counts from a cumulative sum: num[t] = #above in [lo, hi], den[t] = hi - lo + 1
    csum = torch.nn.functional.pad(above.cumsum(0), (1, 0))
    t = torch.arange(num_frames, device=e.device)
    lo = (t - frames_context).clamp_min(0)
    hi = (t + frames_context).clamp_max(num_frames - 1)
    num = csum[hi + 1] - csum[lo]
    den = hi - lo + 1
    prop = torch.tensor(proportion, dtype=torch.float32, device=e.device)
    return num.to(torch.float32) >= den.to(torch.float32) * prop


def keep_min_frames(speech: Tensor, log_energy: Tensor, min_frames: int) -> Tensor:
    """``speech`` ``(T,)`` widened, if it marks fewer than ``min(min_frames, T)`` frames, by the
    loudest frames, so that VAD never leaves an utterance (nearly) empty."""
    need = min(min_frames, speech.numel())
    if int(speech.sum()) >= need:
        return speech
    keep = speech.clone()
    keep[torch.topk(log_energy, need).indices] = True
    return keep


def frame_log_energy(
    waves: list[Tensor],
    sample_rate: int,
    cfg: FeatureConfig,
    device: str | torch.device = "cpu",
    options: KaldiOptions | None = None,
) -> list[Tensor]:
    """Kaldi's per-frame log energy ``(T_i,)`` of each waveform (MFCC C0 with use-energy),
    framed as the features are, so masks line up with feature frames."""
    frontend = KaldiFrontEnd(cfg, options or KaldiOptions(), device, sample_rate)
    return frontend.log_energy(waves, sample_rate)


def feature_energy(feats: Tensor) -> Tensor:
    """Frame energy ``(T,)`` recovered from log-mel features ``(T, F)``: log of the summed mel
    energies. For when only fbank features are at hand (e.g. the faithfulness evaluator);
    take it before CMN, which shifts each bin by a different amount."""
    if feats.dim() != 2:
        raise ValueError(
            f"feature_energy: expected log-mel features of shape (T, F), got {tuple(feats.shape)}"
        )
    return torch.logsumexp(feats.to(torch.float32), dim=1)
