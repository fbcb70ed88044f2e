"""A VoxCeleb1-layout corpus of real recorded speech from Debian's Asterisk voice prompts.

Each ``asterisk-core-sounds-<lang>-wav`` / ``asterisk-prompt-*`` package is one professional
speaker reading the prompts of a telephone system (8 kHz mono, WAV or raw GSM 06.10). The
folder names say who (``en_US_f_Allison``: language, region, gender, name); the two older
prompt packages install under a bare language folder and are listed in ``VOICES`` with the
speaker their copyright file names. Allison Smith recorded both the US English and the Mexican
Spanish prompts, so she is one speaker with videos in two languages.

``build_real_corpus`` writes ``wav/<id>/<video>/<NNNNN>.wav`` at 16 kHz (band-limited
resampling, ``voxray.corpus.audio.resample``), a "video" being a family of prompts (the name
before the first ``-``: ``vm``, ``conf``, ``queue`` ...) recorded together; ``vox1_meta.csv``
(every speaker Set ``test``: too few speakers to train on), ``veri_test2.txt`` (same-speaker
trials always across videos, as many different-speaker trials), ``iden_split.txt`` (by video),
``sources.tsv`` (each utterance's package and source file) and a README.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from voxray.corpus.audio import decode_ffmpeg, resample
from voxray.io.storage import Storage

SOUNDS = "/usr/share/asterisk/sounds"
SAMPLE_RATE = 16000
#: raw GSM 06.10 at 8 kHz: a 33-byte frame per 20 ms.
GSM_BYTES_PER_S = 33 * 50
META_HEADER = "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"
#: ``<lang>_<REGION>_<f|m>_<Name>``: the folders of asterisk-core-sounds-* and newer packages.
VOICE_FOLDER = re.compile(
    r"^(?P<lang>[a-z]{2})_(?P<region>[A-Z]{2})_(?P<gender>[fm])_(?P<name>\w+)$"
)


@dataclass(frozen=True)
class Voice:
    """One recorded speaker's prompts: the folder under the sounds root and who spoke them."""

    folder: str
    speaker: str
    gender: str
    language: str
    ext: str = ".wav"
    package: str = ""


#: packages whose folder does not name the speaker (from /usr/share/doc/<package>/copyright).
VOICES: tuple[Voice, ...] = (
    Voice("fr", "Armelle", "f", "fr-FR", ".gsm", "asterisk-prompt-fr-armelle"),
    Voice("es", "July", "f", "es-CO", ".gsm", "asterisk-prompt-es-co"),
)


@dataclass
class RealCorpusSummary:
    """What ``build_real_corpus`` wrote."""

    out_dir: str
    speakers: dict[str, list[str]] = field(default_factory=dict)
    utterances: int = 0
    audio_s: float = 0.0
    trials: int = 0

    def __str__(self) -> str:
        who = ", ".join(f"{s} ({'/'.join(f)})" for s, f in self.speakers.items())
        return (
            f"{len(self.speakers)} speakers [{who}], {self.utterances} utterances, "
            f"{self.audio_s / 60:.1f} min of audio; veri_test2.txt {self.trials} trials"
        )


def find_voices(sounds: str = SOUNDS) -> list[Voice]:
    """The voices installed under ``sounds`` (folders named by the convention, then ``VOICES``
    whose folder holds files of their format), sorted by folder."""
    store = Storage(sounds)
    if not store.fs.isdir(store.path()):
        return []
    found = []
    for entry in sorted(store.fs.ls(store.path(), detail=False)):
        name = posixpath.basename(entry.rstrip("/"))
        m = VOICE_FOLDER.match(name)
        if m and store.fs.isdir(entry):
            lang = f"{m['lang']}-{m['region']}"
            found.append(Voice(name, m["name"], m["gender"], lang))
    for v in VOICES:
        if any(p.endswith(v.ext) for p in _prompts(store, v)):
            found.append(v)
    return sorted(found, key=lambda v: v.folder)


def _prompts(store: Storage, voice: Voice) -> list[str]:
    """Prompt files of ``voice`` relative to the sounds root (sub-folders included), sorted."""
    base = store.path(voice.folder)
    if not store.fs.isdir(base):
        return []
    files = [store.relative(p) for p in store.fs.find(base)]
    return sorted(p for p in files if p.endswith(voice.ext))


def family(rel: str, voice: Voice) -> str:
    """The "video" of a prompt: its sub-folder (``digits``), else the name before the first
    ``-`` or ``_`` (``vm-intro`` -> ``vm``), lower case, letters and digits only."""
    inner = rel[len(voice.folder) + 1 :]
    head = inner.split("/")[0] if "/" in inner else re.split(r"[-_]", inner)[0]
    return re.sub(r"[^a-z0-9]", "", head.lower().removesuffix(voice.ext)) or "misc"


def _seconds(store: Storage, rel: str) -> float:
    """Duration from the header (WAV) or the size (raw GSM 06.10: 33 bytes per 20 ms)."""
    if rel.endswith(".gsm"):
        return store.fs.size(store.path(rel)) / GSM_BYTES_PER_S
    with store.open(rel, "rb") as f:
        info = sf.info(f)
    return info.frames / info.samplerate


def _load(store: Storage, rel: str) -> np.ndarray:
    """A prompt as float32 mono samples at 16 kHz."""
    if rel.endswith(".wav"):
        wave, sr = sf.read(io.BytesIO(store.read_bytes(rel)), dtype="float32", always_2d=True)
    else:
        wave, info = decode_ffmpeg(store, rel)
        sr = info.sample_rate
    mono = np.array(wave[:, 0], dtype=np.float32)  # a writable copy (ffmpeg gives a view)
    return mono if sr == SAMPLE_RATE else resample(mono, sr, SAMPLE_RATE)


def choose_prompts(
    store: Storage, voice: Voice, videos: int, utts: int, min_seconds: float, seed: int
) -> dict[str, list[str]]:
    """``videos`` families -> ``utts`` prompts each: the families with the most prompts of at
    least ``min_seconds`` (ties by name), prompts in seeded-hash order."""
    groups: dict[str, list[str]] = {}
    for rel in _prompts(store, voice):
        if _seconds(store, rel) >= min_seconds:
            groups.setdefault(family(rel, voice), []).append(rel)
    full = sorted(
        (f for f, g in groups.items() if len(g) >= utts), key=lambda f: (-len(groups[f]), f)
    )
    return {f: sorted(groups[f], key=lambda r: _rank(seed, r))[:utts] for f in full[:videos]}


def _rank(seed: int, text: str) -> str:
    return hashlib.sha1(f"{seed}\0{text}".encode()).hexdigest()


def build_real_corpus(
    out_dir: str,
    sounds: str = SOUNDS,
    videos: int = 3,
    utts: int = 4,
    min_seconds: float = 1.5,
    seed: int = 0,
    per_side: int = 2,
) -> RealCorpusSummary:
    """Write the corpus to ``out_dir`` (a new or empty folder) from the voices under ``sounds``.

    Per speaker: the ``videos`` prompt families with the most prompts of at least
    ``min_seconds`` (per recorded package, so a speaker with two packages gets videos from
    both), ``utts`` prompts each (chosen by a seeded hash). Trials: for every utterance,
    ``per_side`` same-speaker trials against other videos and as many different-speaker ones.

    Raises:
        FileNotFoundError: fewer than two voices are installed.
        FileExistsError: ``out_dir`` is not empty.
    """
    voices = find_voices(sounds)
    if len({v.speaker for v in voices}) < 2:
        raise FileNotFoundError(
            f"{sounds}: {len(voices)} Asterisk voice(s) installed, need 2 speakers or more "
            "(apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav ...)"
        )
    out = Storage(out_dir)
    if out.fs.isdir(out.path()) and out.fs.ls(out.path()):
        raise FileExistsError(f"{out_dir} exists and is not empty: choose a new folder")
    src = Storage(sounds)
    ids = {s: f"id9{i + 1:04d}" for i, s in enumerate(sorted({v.speaker for v in voices}))}
    summary = RealCorpusSummary(out_dir)
    utt_video: dict[str, str] = {}
    sources = ["utt_id\tfolder\tsource"]
    for voice in voices:
        spk = ids[voice.speaker]
        chosen = choose_prompts(src, voice, videos, utts, min_seconds, seed)
        for fam, rels in chosen.items():
            video = f"{voice.language}-{fam}"
            for n, rel in enumerate(rels, start=1):
                wave = _load(src, rel)
                utt_id = f"{spk}/{video}/{n:05d}"
                buf = io.BytesIO()
                sf.write(buf, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")
                out.write_bytes(f"wav/{utt_id}.wav", buf.getvalue())
                utt_video[utt_id] = video
                sources.append(f"{utt_id}\t{voice.folder}\t{posixpath.join(sounds, rel)}")
                summary.audio_s += wave.size / SAMPLE_RATE
        if chosen:
            summary.speakers.setdefault(voice.speaker, []).append(voice.folder)
    summary.utterances = len(utt_video)
    _write_lists(out, voices, ids, summary, utt_video, sources, seed, per_side)
    return summary


def _write_lists(
    out: Storage,
    voices: list[Voice],
    ids: dict[str, str],
    summary: RealCorpusSummary,
    utt_video: dict[str, str],
    sources: list[str],
    seed: int,
    per_side: int,
) -> None:
    """The corpus's text files: metadata, trial list, identification split, sources, README."""
    genders = {v.speaker: v.gender for v in voices}
    langs: dict[str, list[str]] = {}
    for v in voices:
        langs.setdefault(v.speaker, []).append(v.language)
    meta = [META_HEADER] + [
        f"{ids[s]}\t{s}\t{genders[s]}\t{'+'.join(langs[s])}\ttest" for s in summary.speakers
    ]
    trials = veri_lines(utt_video, seed, per_side)
    summary.trials = len(trials)
    out.write_text("vox1_meta.csv", "\n".join(meta) + "\n")
    out.write_text("veri_test2.txt", "".join(f"{lab} {a}.wav {b}.wav\n" for lab, a, b in trials))
    out.write_text("iden_split.txt", "".join(f"{s} {u}.wav\n" for s, u in iden_lines(utt_video)))
    out.write_text("sources.tsv", "\n".join(sources) + "\n")
    out.write_text("README.txt", _readme(summary, voices, ids))


def veri_lines(utt_video: dict[str, str], seed: int, per_side: int) -> list[tuple[int, str, str]]:
    """Balanced trials: for each utterance ``per_side`` same-speaker partners from its speaker's
    other videos and ``per_side`` other speakers' utterances, in seeded-hash order; an
    unordered pair appears once."""
    by_speaker: dict[str, list[str]] = {}
    for u in sorted(utt_video):
        by_speaker.setdefault(u.split("/")[0], []).append(u)
    seen: set[frozenset[str]] = set()
    lines = []
    for u in sorted(utt_video):
        spk = u.split("/")[0]
        same = [v for v in by_speaker[spk] if utt_video[v] != utt_video[u]]
        other = [v for s, us in by_speaker.items() if s != spk for v in us]
        for label, pool in ((1, same), (0, other)):
            picked = 0
            for v in sorted(pool, key=lambda v: _rank(seed, f"{u}\0{v}")):
                if picked == per_side:
                    break
                if frozenset((u, v)) not in seen:
                    seen.add(frozenset((u, v)))
                    lines.append((label, u, v))
                    picked += 1
    return lines


def iden_lines(utt_video: dict[str, str]) -> list[tuple[int, str]]:
    """VoxCeleb1's identification split by video: each speaker's last video tests (3), the
    one before validates (2), the rest trains (1)."""
    videos: dict[str, list[str]] = {}
    for u, v in utt_video.items():
        spk_videos = videos.setdefault(u.split("/")[0], [])
        if v not in spk_videos:
            spk_videos.append(v)
    lines = []
    for u in sorted(utt_video):
        order = sorted(videos[u.split("/")[0]])
        rank = order.index(utt_video[u])
        lines.append((3 if rank == len(order) - 1 else 2 if rank == len(order) - 2 else 1, u))
    return lines


def _readme(summary: RealCorpusSummary, voices: list[Voice], ids: dict[str, str]) -> str:
    rows = "\n".join(
        f"  {ids[v.speaker]}  {v.speaker:<12} {v.gender}  {v.language:<6} {v.package or v.folder}"
        for v in voices
        if v.speaker in summary.speakers
    )
    return f"""REAL recorded speech in the VoxCeleb1 layout, written by `voxray real-corpus`.

Source: Debian's Asterisk voice prompt packages (8 kHz telephone prompts read by professional
speakers), resampled to 16 kHz mono PCM16. {summary}.
A "video" is a family of prompts (same name prefix) of one package; same-speaker trials always
pair different videos. Every speaker is Set test: too few speakers to train a model on.

  id       speaker      g  lang   package / folder
{rows}

Licences: see /usr/share/doc/<package>/copyright of each package. sources.tsv maps every
utterance to its source file.
"""
