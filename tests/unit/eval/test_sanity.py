"""Sanity checks (Adebayo et al. 2018): an input-only 'method' (a Sobel edge detector) is
flagged; the plain input gradient of a trained tiny CNN is not (its maps decorrelate as the
layers are randomised), and it changes under label randomisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import Tensor, nn

from voxray.eval.sanity import (
    ORIGINAL,
    cascading_randomisation,
    compare_maps,
    flag_insensitive,
    label_randomisation,
    randomisation_blocks,
    randomise_modules,
)
from voxray.testing.tiny_models import tiny_cnn_classifier

T, F, CLASSES = 16, 12, 3


def _toy_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Separable toy task: class c raises bins 4c..4c+3 in the second half of the frames."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = torch.randn(n, T, F, generator=g)
    for c in range(CLASSES):
        x[y == c, T // 2 :, 4 * c : 4 * c + 4] += 2.0
    return x, y


def _train(labels_shuffled: bool, seed: int = 0, steps: int = 200) -> nn.Module:
    model = tiny_cnn_classifier(num_classes=CLASSES, seed=seed, input_dim=F)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed + 7)
    for step in range(steps):
        x, y = _toy_data(32, seed=1000 * seed + step)
        if labels_shuffled:
            y = y[torch.randperm(len(y), generator=g)]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    return _train(labels_shuffled=False)


@pytest.fixture(scope="module")
def probe() -> tuple[Tensor, Tensor]:
    return _toy_data(8, seed=99)


def _saliency(targets: Tensor):
    """The plain input gradient of the target logit (Simonyan et al.), via autograd."""

    def attribute(model: nn.Module, feats: Tensor) -> Tensor:
        x = feats.clone().requires_grad_(True)
        logits = model(x)
        (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), x)
        return grad

    return attribute


def _sobel(model: nn.Module, feats: Tensor) -> np.ndarray:
    """An 'explanation' that never looks at the model: edge magnitude of the features."""
    x = feats.numpy()
    return np.hypot(ndimage.sobel(x, axis=1), ndimage.sobel(x, axis=2))


def test_trained_model_learned_the_task(trained, probe) -> None:
    x, y = _toy_data(64, seed=123)
    with torch.no_grad():
        acc = (trained(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9


def test_blocks_run_head_to_input(trained) -> None:
    blocks = randomisation_blocks(trained)
    # pool has no weights; the stem is not in layers(): it comes last, as "rest"
    assert [name for name, _ in blocks] == ["head", "fc", "S3", "S2", "S1", "rest"]
    covered = {id(p) for _, mods in blocks for m in mods for p in m.parameters(recurse=False)}
    assert covered == {id(p) for p in trained.parameters()}


def test_edge_detector_is_flagged_and_saliency_is_not(trained, probe) -> None:
    x, y = probe
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    curves = {
        "sobel": cascading_randomisation(trained, x, _sobel),
        "saliency": cascading_randomisation(trained, x, _saliency(y)),
    }
    after = trained.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # the model is untouched
    for c in curves.values():
        assert c.blocks == (ORIGINAL, "head", "fc", "S3", "S2", "S1", "rest")
        assert c.spearman_abs[0] == pytest.approx(1.0) and c.ssim[0] == pytest.approx(1.0)
    np.testing.assert_allclose(curves["sobel"].spearman_abs, 1.0)
    np.testing.assert_allclose(curves["sobel"].ssim, 1.0)
    sal = curves["saliency"]
    assert sal.final.spearman_abs < 0.5 and sal.final.ssim < 0.5
    assert abs(sal.final.spearman) < 0.5
    assert flag_insensitive(curves, threshold=0.5) == {"sobel": True, "saliency": False}


def test_cascade_is_deterministic(trained, probe) -> None:
    x, y = probe
    a = cascading_randomisation(trained, x, _saliency(y), seed=3)
    b = cascading_randomisation(trained, x, _saliency(y), seed=3)
    assert a == b


def test_label_randomisation(trained, probe) -> None:
    x, y = probe
    shuffled = _train(labels_shuffled=True, steps=100)
    same = label_randomisation(trained, trained, x, _saliency(y))
    assert same.spearman_abs == pytest.approx(1.0) and same.ssim == pytest.approx(1.0)
    sobel = label_randomisation(trained, shuffled, x, _sobel)
    assert sobel.spearman_abs == pytest.approx(1.0)
    sal = label_randomisation(trained, shuffled, x, _saliency(y))
    assert sal.spearman_abs < 0.5


def test_randomise_modules_resets_batchnorm_and_headless_params() -> None:
    bn = nn.BatchNorm1d(4)
    bn.running_mean.fill_(3.0)
    bn.weight.data.fill_(2.0)
    holder = nn.Module()
    holder.w = nn.Parameter(3.0 + torch.linspace(-1.0, 1.0, 20000).reshape(200, 100))
    old = holder.w.detach().clone()
    randomise_modules([bn, holder], init="reset")
    assert torch.equal(bn.running_mean, torch.zeros(4)) and torch.equal(bn.weight, torch.ones(4))
    # no reset_parameters: zero-mean Gaussian noise with the tensor's own standard deviation
    # (20000 draws: the sample mean and std are within a few percent of the scale)
    new, scale = holder.w.detach(), old.std().item()
    assert new.std().item() == pytest.approx(scale, rel=0.03)
    assert abs(new.mean().item()) < 0.03 * scale  # the old mean (3.0) is gone
    assert abs(torch.corrcoef(torch.stack([new.flatten(), old.flatten()]))[0, 1].item()) < 0.05
    lin = nn.Linear(3, 3)
    w = lin.weight.detach().clone()
    randomise_modules([lin], init="normal")
    assert not torch.equal(lin.weight, w)


def test_compare_maps_and_errors(trained, probe) -> None:
    x, _ = probe
    sim = compare_maps(x.numpy(), -x.numpy())
    assert sim.spearman == pytest.approx(-1.0) and sim.spearman_abs == pytest.approx(1.0)
    with pytest.raises(ValueError, match="expected \\(8, 16, 12\\)"):
        cascading_randomisation(trained, x, lambda m, f: f[:, :4])
    with pytest.raises(ValueError, match="not part of the model"):
        cascading_randomisation(trained, x, _sobel, blocks=[("alien", [nn.Linear(2, 2)])])
