"""Grad-CAM++, Score-CAM and Layer-CAM against the formulas of Li et al. 2022 written out here, item
by item and channel by channel, with activations and gradients taken by hand (the tiny models'
forward passes unrolled, torch.autograd.grad), plus layer specs, upsampling and averaging."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from voxray.attribution import AttributionResult, attribute
from voxray.attribution.cam_layers import parse_layer_spec
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier

CAMS = ("grad_cam_pp", "score_cam", "layer_cam")
Unrolled = Callable[[SpeakerClassifier, Tensor], tuple[Tensor, dict[str, Tensor]]]


def cam(
    model: SpeakerClassifier,
    feats: Tensor,
    method: str,
    *layers: str,
    target: Tensor | None = None,
    **params: float,
) -> AttributionResult:
    p = AttributionConfig(cam_layers=layers, **params)
    return attribute(model, feats, method, "cam", params=p, target=target)


def unrolled_cnn(model: SpeakerClassifier, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    e = model.embedder
    a1 = e.S1(e.stem(x.transpose(1, 2).unsqueeze(1)))
    a2 = e.S2(a1)
    a3 = e.S3(a2)
    return model.head(e.fc(e.pool(a3))), {"S1": a1, "S2": a2, "S3": a3}


def unrolled_tdnn(model: SpeakerClassifier, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    e = model.embedder
    h = e.conv1(x.transpose(1, 2))
    h1 = e.block1(h)
    h2 = e.block2(h1)
    a = e.mfa(torch.cat([h1, h2], dim=1))
    return model.head(e.fc(e.pool(a))), {"conv1": h, "block1": h1, "block2": h2, "mfa": a}


def upsample(layer_map: Tensor, frames: int, bins: int) -> Tensor:
    """One item's layer map (F', T') or (T',) on the (T, F) input grid."""
    m = layer_map[None, None]
    if layer_map.dim() == 2:
        return F.interpolate(m, size=(bins, frames), mode="bilinear", align_corners=False)[0, 0].T
    line = F.interpolate(m, size=frames, mode="linear", align_corners=False)[0, 0]
    return line[:, None].repeat(1, bins)


def tanh_normalised(m: Tensor, gamma: float = 5.0) -> np.ndarray:
    """Li et al. 2022 eqs. 8-9 in numpy."""
    a = m.detach().numpy()
    hat = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else np.zeros_like(a)
    return np.tanh(gamma * hat / hat.max()) if hat.max() > 0 else hat


def direct_gradient_cam(
    model: SpeakerClassifier, unrolled: Unrolled, x: Tensor, target: Tensor, layer: str, kind: str
) -> list[np.ndarray]:
    maps = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1].clone().requires_grad_(True)
        logits, acts = unrolled(model, xb)
        score = logits[0, target[b]]
        (g,) = torch.autograd.grad(score, acts[layer])
        a, g = acts[layer][0].detach(), g[0]
        acc = torch.zeros(a.shape[1:], dtype=a.dtype)
        for k in range(a.shape[0]):
            if kind == "layer_cam":
                acc += torch.relu(g[k]) * a[k]
            else:  # Grad-CAM++ with Y = exp(S): dY/dA = exp(S) g
                d_y = torch.exp(score.detach()) * g[k]
                denom = 2 * g[k] ** 2 + a[k].sum() * g[k] ** 3
                safe = torch.where(denom != 0, denom, 1.0)
                alpha = torch.where(denom != 0, g[k] ** 2 / safe, 0.0)
                acc += (alpha * torch.relu(d_y)).sum() * a[k]
        maps.append(tanh_normalised(upsample(torch.relu(acc), x.shape[1], x.shape[2])))
    return maps


@torch.no_grad()
def direct_score_cam(
    model: SpeakerClassifier, unrolled: Unrolled, x: Tensor, target: Tensor, layer: str
) -> list[np.ndarray]:
    maps = []
    for b in range(x.shape[0]):
        _, acts = unrolled(model, x[b : b + 1])
        a = acts[layer][0]
        acc = torch.zeros(a.shape[1:], dtype=a.dtype)
        for k in range(a.shape[0]):
            m = upsample(a[k], x.shape[1], x.shape[2])
            m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else torch.zeros_like(m)
            p = torch.softmax(model(x[b : b + 1] * m), dim=1)[0, target[b]]
            acc += p * a[k]
        maps.append(tanh_normalised(upsample(torch.relu(acc), x.shape[1], x.shape[2])))
    return maps


@pytest.mark.parametrize(
    ("model_name", "layer"),
    [("cnn", "S2"), ("cnn", "S3"), ("tdnn", "block1"), ("tdnn", "mfa")],
    ids=["cnn-S2", "cnn-S3", "tdnn-block1", "tdnn-mfa"],
)
@pytest.mark.parametrize("method", CAMS, ids=CAMS)
def test_cam_matches_the_direct_formula(
    request: pytest.FixtureRequest,
    method: str,
    model_name: str,
    layer: str,
    feats: Tensor,
    target: Tensor,
) -> None:
    model = request.getfixturevalue(model_name)
    unrolled = unrolled_cnn if model_name == "cnn" else unrolled_tdnn
    res = cam(model, feats, method, layer, target=target)
    if method == "score_cam":
        expected = direct_score_cam(model, unrolled, feats, target, layer)
    else:
        expected = direct_gradient_cam(model, unrolled, feats, target, layer, method)
    assert res.maps.shape == feats.shape
    assert torch.equal(res.target, target)
    for b in range(feats.shape[0]):
        np.testing.assert_allclose(res.maps[b].numpy(), expected[b], rtol=1e-7, atol=1e-9)
    assert res.maps.max() > 0.5  # the maps are not trivially zero


@pytest.mark.parametrize("method", CAMS, ids=CAMS)
def test_one_dimensional_layers_repeat_over_bins(
    tdnn: SpeakerClassifier, method: str, feats: Tensor, target: Tensor
) -> None:
    maps = cam(tdnn, feats, method, "mfa", target=target).maps
    torch.testing.assert_close(maps, maps[:, :, :1].expand_as(maps))


@pytest.mark.parametrize("method", CAMS, ids=CAMS)
def test_several_layers_average_their_normalised_maps(
    cnn: SpeakerClassifier, method: str, feats: Tensor, target: Tensor
) -> None:
    def run(*layers: str) -> Tensor:
        return cam(cnn, feats, method, *layers, target=target).maps

    joined = run("S3+S2")
    torch.testing.assert_close(joined, (run("S2") + run("S3")) / 2)
    torch.testing.assert_close(run("S3", "S2"), joined)


@pytest.mark.parametrize(
    ("model_name", "layer"), [("cnn", "S3"), ("tdnn", "mfa")], ids=["cnn", "tdnn"]
)
def test_default_layer_is_the_last_frame_level_layer(
    request: pytest.FixtureRequest, model_name: str, layer: str, feats: Tensor, target: Tensor
) -> None:
    model = request.getfixturevalue(model_name)
    default = attribute(model, feats, "layer_cam", "cam", target=target).maps
    named = cam(model, feats, "layer_cam", layer, target=target).maps
    torch.testing.assert_close(default, named)


def test_gamma_zero_gives_min_max_maps(
    cnn: SpeakerClassifier, feats: Tensor, target: Tensor
) -> None:
    maps = cam(cnn, feats, "layer_cam", "S2", target=target, cam_gamma=0.0).maps
    tanh_maps = cam(cnn, feats, "layer_cam", "S2", target=target, cam_gamma=5.0).maps
    assert torch.allclose(maps.amin(dim=(1, 2)), torch.zeros(3, dtype=maps.dtype))
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(3, dtype=maps.dtype))
    torch.testing.assert_close(tanh_maps, torch.tanh(5.0 * maps))


def test_predicted_speaker_is_explained_without_a_target(
    cnn: SpeakerClassifier, feats: Tensor
) -> None:
    res = attribute(cnn, feats, "grad_cam_pp", "cam")
    with torch.no_grad():
        assert torch.equal(res.target, cnn(feats).argmax(dim=1))


def test_layer_specs_and_errors(cnn: SpeakerClassifier, feats: Tensor) -> None:
    assert parse_layer_spec(("S4+S3", "S2", "S3")) == ["S4", "S3", "S2"]
    with pytest.raises(ValueError, match="empty layer name"):
        parse_layer_spec(("S3+",))
    with pytest.raises(KeyError, match="no layer 'S9'.*S1, S2, S3"):
        cam(cnn, feats, "layer_cam", "S9")
    with pytest.raises(ValueError, match="must output"):
        cam(cnn, feats, "layer_cam", "fc")
    with pytest.raises(ValueError, match="has no pathway .classification."):
        attribute(cnn, feats, "layer_cam", "classification")
