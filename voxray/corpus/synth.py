"""Synthesise a small VoxCeleb1-layout corpus (espeak-ng voices, per-video channels) for demos and
tests.

``synth_corpus`` writes ``wav/<id1xxxx>/<video>/<NNNNN>.wav`` (16 kHz mono PCM16),
``vox1_meta.csv``, ``iden_split.txt``, ``veri_test2.txt``, ``list_test_hard2.txt`` and a
README.txt. About 30% of the speakers (``test_speakers``) are the verification test set,
as VoxCeleb1's ``Set = test``; the rest are ``dev`` and train. Everything is planned in
this process from one seeded generator, and each speaker is rendered by a worker process
from its own specs, so the same arguments give byte-identical files for any ``jobs``.
"""

from __future__ import annotations

import io
import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import soundfile as sf

from voxray.corpus.synth_audio import SAMPLE_RATE, ChannelSpec, UttSpec, VoiceSpec, render_utterance
from voxray.corpus.synth_plan import (
    NOISE_BETA,
    PHONE_SHARE,
    REVERB_SHARE,
    SNR_DB,
    SpeakerPlan,
    plan_speakers,
)
from voxray.corpus.synth_trials import hard_trials, iden_split_lines, veri_trials
from voxray.io.storage import Storage

META_HEADER = "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"


@dataclass(frozen=True)
class SynthSummary:
    """What ``synth_corpus`` wrote."""

    out_dir: str
    speakers: int
    test_speakers: int
    utterances: int
    audio_s: float
    trials: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lists = ", ".join(f"{name} {n} trials" for name, n in self.trials.items())
        return (
            f"{self.speakers} speakers ({self.test_speakers} test), {self.utterances} utterances, "
            f"{self.audio_s / 60:.1f} min of audio; {lists}"
        )


def synth_corpus(
    out_dir: str,
    speakers: int = 20,
    videos: int = 3,
    utts: int = 4,
    seed: int = 0,
    test_speakers: int | None = None,
    jobs: int = 2,
) -> SynthSummary:
    """Write a synthetic VoxCeleb1-layout corpus to ``out_dir`` (a new or empty local folder).

    ``videos`` per speaker (each its own channel; >= 2, since same-speaker trials cross
    videos), ``utts`` per video, ``test_speakers`` held out for the trial lists (default
    30% of ``speakers``, at least 2), ``jobs`` worker processes for rendering.
    """
    n_test = _check_args(out_dir, speakers, videos, utts, test_speakers)
    plans = plan_speakers(speakers, videos, utts, n_test, seed)
    jobs_args = [(out_dir, p.voice, p.videos) for p in plans]
    if jobs <= 1:
        lengths = [_render_speaker(*a) for a in jobs_args]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            lengths = list(pool.map(_render_speaker, *zip(*jobs_args, strict=True)))

    store = Storage(out_dir)
    rng = np.random.default_rng([seed, 1])
    veri = veri_trials(plans, rng)
    hard = hard_trials(plans, rng)
    store.write_text("veri_test2.txt", "".join(f"{label} {a} {b}\n" for label, a, b in veri))
    store.write_text("list_test_hard2.txt", "".join(f"{label} {a} {b}\n" for label, a, b in hard))
    store.write_text("iden_split.txt", "".join(f"{s} {p}\n" for s, p in iden_split_lines(plans)))
    store.write_text("vox1_meta.csv", _meta_text(plans))
    store.write_text("README.txt", _readme(plans, videos, utts, seed))
    total = sum(sum(n) for n in lengths)
    return SynthSummary(
        out_dir=out_dir,
        speakers=speakers,
        test_speakers=n_test,
        utterances=sum(len(n) for n in lengths),
        audio_s=total / SAMPLE_RATE,
        trials={"veri_test2.txt": len(veri), "list_test_hard2.txt": len(hard)},
    )


def _check_args(
    out_dir: str, speakers: int, videos: int, utts: int, test_speakers: int | None
) -> int:
    """Raise on sizes no trial list can be made from, or a folder in use; the test speakers."""
    if speakers < 3:
        raise ValueError(
            f"speakers={speakers}: need at least 3 (2 test speakers and 1 to train on)"
        )
    if videos < 2:
        raise ValueError(
            f"videos={videos}: need at least 2, same-speaker trials pair different videos"
        )
    if utts < 1:
        raise ValueError(f"utts={utts}: need at least 1 utterance per video")
    n_test = max(2, round(0.3 * speakers)) if test_speakers is None else test_speakers
    if not 2 <= n_test <= speakers - 1:
        raise ValueError(
            f"test_speakers={n_test}: must be between 2 and speakers - 1 = {speakers - 1}"
        )
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(
            f"{out_dir} exists and is not empty: synth_corpus writes a new corpus (choose a new "
            f"folder)"
        )
    return n_test


def _render_speaker(
    out_dir: str, voice: VoiceSpec, videos: tuple[tuple[ChannelSpec, tuple[UttSpec, ...]], ...]
) -> list[int]:
    """Render and write every utterance of one speaker; returns their lengths in samples."""
    store = Storage(out_dir)
    lengths = []
    for channel, utts in videos:
        for utt in utts:
            wave = render_utterance(voice, channel, utt)
            buf = io.BytesIO()
            sf.write(buf, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")
            store.write_bytes(utt.rel_path, buf.getvalue())
            lengths.append(int(wave.size))
    return lengths


def _meta_text(plans: list[SpeakerPlan]) -> str:
    rows = [META_HEADER] + [
        f"{p.speaker_id}\t{p.name}\t{p.gender}\t{p.nationality}\t{p.set}" for p in plans
    ]
    return "\n".join(rows) + "\n"


def _espeak_version() -> str:
    try:
        out = subprocess.run(
            ["espeak-ng", "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        return "espeak-ng (version unknown)"
    return out.split(" Data at:")[0].strip()


def _readme(plans: list[SpeakerPlan], videos: int, utts: int, seed: int) -> str:
    n_test = sum(p.set == "test" for p in plans)
    return f"""SYNTHETIC corpus in the VoxCeleb1 layout, written by `voxray synth-corpus`.
No real person's voice.

{len(plans)} speakers ({n_test} test, {len(plans) - n_test} dev) x {videos} videos x {utts}
utterances, seed {seed}.
Synthesiser: {_espeak_version()}, 22.05 kHz output resampled to 16 kHz mono PCM16.

Speakers: gender (female / male espeak-ng voice variant and pitch range), per-speaker pitch,
speed, voice variant and accent (espeak-ng language; the accent is the Nationality column of
vox1_meta.csv), a vocal-tract-length factor (all frequencies scaled by 0.90-1.10) and a fixed
EQ (two formant-like peaks, an anti-resonance, a spectral tilt) applied to all their audio.
Each utterance is a different random sentence from a built-in word list, 2-5 s long, with a
small pitch / speed jitter; each video adds a session offset to pitch and speed.
Videos: each video is its own channel shared by its utterances: microphone band limits (phone
band in {PHONE_SHARE:.0%} of videos) and an EQ peak, reverberation in {REVERB_SHARE:.0%} of videos
(a synthetic
exponentially decaying room impulse response), a gain, and coloured noise (1/f^beta, beta
{NOISE_BETA[0]:g}-{NOISE_BETA[1]:g}) at a fixed SNR of {SNR_DB[0]:g}-{SNR_DB[1]:g} dB.

Files: wav/<speaker>/<video>/<NNNNN>.wav; vox1_meta.csv (Set dev/test); iden_split.txt
(1/2/3 for the dev speakers' utterances, by video); veri_test2.txt (balanced trials among
the test speakers, same-speaker pairs always from different videos; different-speaker pairs
of the same and of different gender); list_test_hard2.txt (negatives of the same gender and
nationality).
"""
