"""Plan a synthetic corpus: who the speakers are, their voices, videos (channels) and sentences.

All randomness of a corpus is drawn here, in a fixed order, from one generator seeded by
the corpus seed; the renderer only executes the resulting specs. Test speakers are
assigned in pairs of the same gender and nationality (pairs alternate gender), so the
hard list always has same-gender, same-nationality negatives and veri_test2 has both
same- and different-gender negatives when there are at least four test speakers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxray.corpus.synth_audio import ChannelSpec, UttSpec, VoiceSpec

#: (nationality, share, espeak-ng languages giving that accent); shares roughly VoxCeleb's mix.
NATIONALITIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("USA", 0.34, ("en-us", "en-us-nyc")),
    ("UK", 0.22, ("en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd")),
    ("India", 0.08, ("hi",)),
    ("Ireland", 0.06, ("ga",)),
    ("Germany", 0.06, ("de",)),
    ("France", 0.06, ("fr",)),
    ("Spain", 0.05, ("es",)),
    ("Italy", 0.05, ("it",)),
    ("Jamaica", 0.04, ("en-029",)),
    ("Netherlands", 0.02, ("nl",)),
    ("Sweden", 0.02, ("sv",)),
)
#: espeak-ng variants by gender; their F0 at -p 50: female 170-270 Hz, male 75-130 Hz.
#: (The en-gb and fr-fr voices ignore variants, hence "en" and "fr" above.)
VARIANTS = {
    "f": (
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
        "Alicia",
        "Andrea",
        "Annie",
        "aunty",
        "belinda",
        "linda",
        "steph",
        "anika",
        "grandma",
    ),
    "m": (
        "m1",
        "m2",
        "m3",
        "m4",
        "m5",
        "m6",
        "m7",
        "m8",
        "adam",
        "Alex",
        "Andy",
        "antonio",
        "benjamin",
        "boris",
        "caleb",
        "david",
        "ed",
        "edward",
        "Gene",
        "gustave",
        "Henrique",
        "iven",
        "Jacky",
        "john",
        "Lee",
        "Mario",
        "max",
        "Michael",
        "michel",
        "miguel",
        "Mike",
        "norbert",
        "pablo",
        "paul",
        "pedro",
        "quincy",
        "rob",
        "robert",
        "sandro",
        "travis",
        "victor",
    ),
}
#: espeak-ng -p ranges and vocal-tract factors (441 / vtl_q) by gender.
PITCH = {"m": (20, 60), "f": (45, 85)}
VTL_Q = {"m": (441, 490), "f": (401, 451)}
#: per-video channel: SNR range (dB), noise colour range (1/f^beta), share of reverberant rooms
#: and of phone-band channels. Milder than the worst of VoxCeleb, so a small model can learn.
SNR_DB = (15.0, 40.0)
NOISE_BETA = (0.0, 1.5)
REVERB_SHARE = 0.5
PHONE_SHARE = 0.1
WORDS = tuple(
    """time year people way day man thing woman life child world school state family student group
    country problem hand part place case week company system program question work government number
    night point home water room mother area money story fact month lot right study book eye job word
    business issue side kind head house service friend father power hour game line end member law
    car
    city community name president team minute idea kid body information back parent face others
    level
    office door health person art war history party result change morning reason research girl guy
    moment air teacher force education garden river mountain window letter music picture island
    bridge
    market summer winter evening voice paper table silver golden quiet gentle bright early simple
    certain strong clear green yellow ancient modern careful sudden narrow heavy warm cold open free
    happy little great small large young old different important public able late hard major better
    economic strange possible whole real best national red blue round deep wide long short good new
    first last own other high local social black white political true special federal human medical
    said made found took came gave told felt left kept began seemed helped showed heard played moved
    lived believed brought happened wrote provided stood lost paid met included continued learned
    changed led understood watched followed stopped created spoke read spent grew opened walked won
    offered remembered loved considered appeared bought waited served died sent expected built
    stayed
    fell reached killed remained suggested raised passed sold required reported decided pulled
    slowly quickly always never often rather almost today tomorrow together perhaps already
    yesterday
    before after during under over between without around through against toward behind
    beyond""".split()
)
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SYLLABLES = (
    "ka",
    "ro",
    "mi",
    "len",
    "da",
    "vi",
    "tor",
    "sa",
    "bel",
    "na",
    "jo",
    "ric",
    "an",
    "el",
    "mar",
    "to",
    "li",
    "son",
    "ber",
    "ta",
    "gan",
    "ne",
    "co",
    "ra",
    "wen",
    "dal",
    "fi",
    "hu",
    "lo",
    "ser",
)


@dataclass(frozen=True)
class SpeakerPlan:
    """One speaker: metadata row, voice, and per video its channel and utterances."""

    speaker_id: str
    name: str
    gender: str
    nationality: str
    set: str
    voice: VoiceSpec
    videos: tuple[tuple[ChannelSpec, tuple[UttSpec, ...]], ...]

    def list_paths(self) -> list[list[str]]:
        """Per video, its utterances' paths as the lists write them (relative to wav/)."""
        return [[u.rel_path.split("/", 1)[1] for u in utts] for _, utts in self.videos]


def plan_speakers(
    speakers: int, videos: int, utts: int, n_test: int, seed: int
) -> list[SpeakerPlan]:
    """Every speaker's plan, ``id10001`` upwards; ``n_test`` of them (spread at random) are test."""
    rng = np.random.default_rng([seed, 0])
    test = sorted(int(i) for i in rng.permutation(speakers)[:n_test])
    attrs: dict[int, tuple[str, str]] = {}
    first = str(rng.choice(["m", "f"]))
    for j, idx in enumerate(test):
        if j % 2 == 1:  # the second of a pair: same gender and nationality as the first
            attrs[idx] = attrs[test[j - 1]]
        elif j + 1 < len(test):  # the first of a pair; pairs alternate gender
            gender = first if (j // 2) % 2 == 0 else ("f" if first == "m" else "m")
            attrs[idx] = (gender, _nationality(rng))
        else:  # an odd one out
            attrs[idx] = (str(rng.choice(["m", "f"])), _nationality(rng))
    names: set[str] = set()
    plans = []
    for i in range(speakers):
        gender, nationality = attrs.get(i) or (str(rng.choice(["m", "f"])), _nationality(rng))
        speaker_id = f"id1{i + 1:04d}"
        voice = _voice(rng, gender, nationality)
        name = _name(rng, names)
        video_ids: set[str] = set()
        plan_videos = []
        for _ in range(videos):
            video_id = _video_id(rng, video_ids)
            channel = _channel(rng)
            plan_utts = tuple(
                _utterance(rng, voice, f"wav/{speaker_id}/{video_id}/{u + 1:05d}.wav")
                for u in range(utts)
            )
            plan_videos.append((channel, plan_utts))
        plans.append(
            SpeakerPlan(
                speaker_id,
                name,
                gender,
                nationality,
                "test" if i in attrs else "dev",
                voice,
                tuple(plan_videos),
            )
        )
    return plans


def _nationality(rng: np.random.Generator) -> str:
    shares = np.array([s for _, s, _ in NATIONALITIES])
    return NATIONALITIES[int(rng.choice(len(NATIONALITIES), p=shares / shares.sum()))][0]


def _voice(rng: np.random.Generator, gender: str, nationality: str) -> VoiceSpec:
    languages = next(langs for nat, _, langs in NATIONALITIES if nat == nationality)
    lo, hi = PITCH[gender]
    qlo, qhi = VTL_Q[gender]
    return VoiceSpec(
        language=str(rng.choice(languages)),
        variant=str(rng.choice(VARIANTS[gender])),
        pitch=int(rng.integers(lo, hi + 1)),
        speed=int(rng.integers(135, 196)),
        amplitude=int(rng.integers(90, 161)),
        vtl_q=int(rng.integers(qlo, qhi + 1)),
        formants=(
            (float(rng.uniform(350, 1100)), float(rng.uniform(4, 9)), float(rng.uniform(1.5, 4))),
            (float(rng.uniform(1400, 3500)), float(rng.uniform(3, 8)), float(rng.uniform(1.5, 4))),
        ),
        notch=(
            float(rng.uniform(2000, 6000)),
            float(rng.uniform(-12, -4)),
            float(rng.uniform(2, 6)),
        ),
        tilt_db=float(rng.uniform(-6, 4)),
    )


def _channel(rng: np.random.Generator) -> ChannelSpec:
    """A video's channel: mostly good interview audio, some reverberant rooms and phone-band
    calls."""
    reverberant = rng.random() < REVERB_SHARE
    telephone = rng.random() < PHONE_SHARE
    return ChannelSpec(
        seed=int(rng.integers(2**31)),
        gain_db=float(rng.uniform(-8, 6)),
        snr_db=float(rng.uniform(*SNR_DB)),
        noise_beta=float(rng.uniform(*NOISE_BETA)),
        rt60_s=float(rng.uniform(0.15, 0.6)) if reverberant else 0.0,
        drr_db=float(rng.uniform(-2, 12)),
        highpass_hz=float(rng.uniform(50, 200)),
        lowpass_hz=float(rng.uniform(3300, 3700) if telephone else rng.uniform(5000, 7800)),
        eq=(float(rng.uniform(300, 5000)), float(rng.uniform(-6, 6)), float(rng.uniform(0.7, 2))),
        pitch_offset=int(rng.integers(-4, 5)),
        speed_offset=int(rng.integers(-10, 11)),
    )


def _utterance(rng: np.random.Generator, voice: VoiceSpec, rel_path: str) -> UttSpec:
    """A random sentence sized for 2.4-4.3 s at the voice's speed and vocal-tract factor."""
    target_s = rng.uniform(2.4, 4.3)
    words = max(3, round(target_s * voice.speed / 60 * 441 / voice.vtl_q))
    text = " ".join(str(w) for w in rng.choice(WORDS, size=words))
    return UttSpec(
        rel_path=rel_path,
        text=text[0].upper() + text[1:] + ".",
        pitch_jitter=int(rng.integers(-2, 3)),
        speed_jitter=int(rng.integers(-6, 7)),
        seed=int(rng.integers(2**31)),
    )


def _video_id(rng: np.random.Generator, taken: set[str]) -> str:
    """An 11-character YouTube-style id, unique for the speaker, not starting with '_' or '-'."""
    while True:
        chars = [_ID_CHARS[int(rng.integers(62))]] + [
            _ID_CHARS[int(k)] for k in rng.integers(64, size=10)
        ]
        vid = "".join(chars)
        if vid not in taken:
            taken.add(vid)
            return vid


def _name(rng: np.random.Generator, taken: set[str]) -> str:
    """A made-up ``First_Last`` name (the VGGFace1 ID column), unique in the corpus."""
    while True:
        first = "".join(str(s) for s in rng.choice(_SYLLABLES, size=2)).capitalize()
        last = "".join(
            str(s) for s in rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))
        ).capitalize()
        name = f"{first}_{last}"
        if name not in taken:
            taken.add(name)
            return name
