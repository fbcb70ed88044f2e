"""Masking and augmentation of features by attribution maps (Zhang et al. 2023 §3.3, Li et al. 2022
§4.4, Sarvaš 2021 §4.3)."""

from __future__ import annotations

from voxray.mask.ranking import count_for_fraction, descending_order, rank_positions, top_positive
from voxray.mask.rules import (
    NORMALISATIONS,
    READINGS,
    TANH_GAMMA,
    apply_condition,
    attribution_x_input,
    kept_bins,
    kept_fraction,
    layer_average,
    moore_means,
    moore_replace,
    normalise,
    saliency_x_input,
    scaled_attribution,
    shuffled_condition,
    threshold_mask,
    threshold_scores,
)

__all__ = [
    "NORMALISATIONS",
    "READINGS",
    "TANH_GAMMA",
    "apply_condition",
    "attribution_x_input",
    "count_for_fraction",
    "descending_order",
    "kept_bins",
    "kept_fraction",
    "layer_average",
    "moore_means",
    "moore_replace",
    "normalise",
    "rank_positions",
    "saliency_x_input",
    "scaled_attribution",
    "shuffled_condition",
    "threshold_mask",
    "threshold_scores",
    "top_positive",
]
