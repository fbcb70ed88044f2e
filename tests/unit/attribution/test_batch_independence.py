"""An utterance's map does not depend on its batch-mates: every registered method, on each of
its pathways (and the trial pathway for the trial methods), on ECAPA-TDNN and ResNet34SE at
small widths, gives the same map for an utterance attributed alone and in a group of 16
(fp32, max relative difference 1e-5: the largest absolute difference over the map's largest
magnitude)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.support.speaker_models import narrow_ecapa, narrow_resnet
from tests.unit.attribution.conftest import SMALL
from voxray.attribution import ATTRIBUTORS, attribute, method_pathways
from voxray.attribution.trial import TRIAL_METHODS, attribute_trials
from voxray.models.base import SpeakerClassifier

GROUP, FRAMES, BINS = 16, 20, 40
TOLERANCE = 1e-5
#: coarser patches and occlusion windows than SMALL's: fewer perturbations of a group of 16
COARSE = {"patch_frames": 10, "patch_bins": 20, "occlusion_frames": 10, "occlusion_bins": 20}
PARAMS = dataclasses.replace(SMALL, ig_steps=4, **COARSE)
BOTH = ("traversal", "classification")
JOBS = [(m, p) for m in sorted(ATTRIBUTORS) for p in method_pathways(m, BOTH)]
JOBS += [(m, "trial") for m in TRIAL_METHODS]
CASES = [(arch, m, p) for arch in ("ecapa", "resnet") for m, p in JOBS]


@pytest.fixture(scope="module")
def models() -> dict[str, SpeakerClassifier]:
    return {"ecapa": narrow_ecapa((BINS, 16, 16)), "resnet": narrow_resnet((BINS, 4, 16))}


def _maps(model: SpeakerClassifier, feats: torch.Tensor, method: str, pathway: str) -> torch.Tensor:
    if pathway == "trial":
        others = torch.randn(GROUP, 16, generator=torch.Generator().manual_seed(5))
        return attribute_trials(model, feats, others[: len(feats)], method, PARAMS).maps
    return attribute(model, feats, method, pathway, params=PARAMS).maps


@pytest.mark.parametrize(("arch", "method", "pathway"), CASES, ids=["-".join(c) for c in CASES])
def test_a_map_does_not_depend_on_its_batch(
    models: dict[str, SpeakerClassifier], arch: str, method: str, pathway: str
) -> None:
    torch.set_num_threads(1)
    feats = torch.randn(GROUP, FRAMES, BINS, generator=torch.Generator().manual_seed(3))
    model = models[arch]
    group = _maps(model, feats, method, pathway)
    alone = _maps(model, feats[:1], method, pathway)
    scale = alone.abs().max()
    assert scale > 0
    diff = float((group[:1] - alone).abs().max() / scale)
    assert diff <= TOLERANCE, f"{method}/{pathway} on {arch}: max relative difference {diff:.2e}"
