"""SpeechBrain's own VoxCeleb ECAPA pipeline, as a SpeechBrain user runs it (Fbank ->
InputNormalization(sentence) -> ECAPA_TDNN, one file at a time): the peer that voxray's
SpeechBrain loading is tested against (tests) and timed against (bench/embed). SpeechBrain is a
test extra, so it is imported here, never by voxray itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

#: SpeechBrain's VoxCeleb ECAPA recipe, as its hyperparams.yaml names the front-end
RECIPE = """\
n_mels: 80
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [{c}, {c}, {c}, {c}, {c3}]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 128
    lin_neurons: 192
"""


def recipe(channels: int) -> str:
    """The recipe's hyperparams.yaml for an ECAPA of ``channels`` channels."""
    return RECIPE.format(c=channels, c3=3 * channels)


def speechbrain_ecapa(channels: int, seed: int = 0) -> torch.nn.Module:
    """A seeded random SpeechBrain ECAPA_TDNN with trained-looking BatchNorm statistics (the
    identity statistics of a fresh model would hide a wrong normalisation)."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(seed)
    model = ECAPA_TDNN(input_size=80, channels=[channels] * 4 + [3 * channels], lin_neurons=192)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def write_checkpoint(folder: Path, model: torch.nn.Module, channels: int | None = None) -> Path:
    """``model`` saved with SpeechBrain's own checkpoint writer as ``embedding_model.ckpt``, with
    the recipe's hyperparams.yaml beside it when ``channels`` is given."""
    from speechbrain.utils.checkpoints import torch_save

    folder.mkdir(parents=True, exist_ok=True)
    torch_save(model, folder / "embedding_model.ckpt")
    if channels is not None:
        (folder / "hyperparams.yaml").write_text(recipe(channels))
    return folder / "embedding_model.ckpt"


@torch.inference_mode()
def speechbrain_features(files: list[Path]) -> Iterator[torch.Tensor]:
    """The recipe's front-end (Fbank, sentence mean normalisation) of each 16 kHz file, one at
    a time as SpeechBrain computes it: (1, frames, 80) each."""
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    fbank = Fbank(n_mels=80)
    norm = InputNormalization(norm_type="sentence", std_norm=False)
    for p in files:
        wave, sr = sf.read(str(p), dtype="float32")
        if sr != 16000:
            raise ValueError(f"{p}: {sr} Hz; SpeechBrain's VoxCeleb recipe expects 16 kHz")
        yield norm(fbank(torch.from_numpy(wave)[None]), torch.ones(1))


@torch.inference_mode()
def speechbrain_embeddings(model: torch.nn.Module, files: list[Path]) -> np.ndarray:
    """SpeechBrain's own inference, one 16 kHz file at a time: (files, 192); (0, 0) for no
    files (bench/embed times the loop's start-up on an empty corpus)."""
    embs = [model(f, torch.ones(1))[0, 0].numpy() for f in speechbrain_features(files)]
    return np.stack(embs) if embs else np.zeros((0, 0), np.float32)
