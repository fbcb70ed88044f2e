"""Which attribution map masks which utterance, and whose map the shuffled control borrows.

Zhang et al. 2023 has two pathways (§3.2): Traversal explains the embedding and works for any speech
(Fig. 1); Classification explains the AAM-softmax logit of a training speaker and is meant
for speech seen in training (Fig. 2). For a speaker the model was not trained on, the
Classification pathway explains whichever training class the utterance happens to be closest
to, so attribution x input stamps that class's pattern onto the test input and the masked-test
EER measures the class, not the speaker (issue 14: 45.6% masked against 23.7% clean on the
demo). So a mask condition's Classification pathway applies to utterances of the model's
training speakers only; every other utterance is masked with its Traversal map.

The shuffled control gives each utterance the map of another utterance: one of another
speaker, from the same group (seen / unseen), so it is a map of the same pathway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from voxray.attribution import get_attributor, method_pathways
from voxray.attribution.base import Pathway
from voxray.config import MaskCondition


def seen_utterances(speaker_of: Mapping[str, str], speakers: Iterable[str]) -> frozenset[str]:
    """The utterances (keys of ``speaker_of``: utt_id -> speaker_id) whose speaker is one of the
    model's training classes ``speakers`` (an imported model without labels has none)."""
    known = set(speakers)
    return frozenset(u for u, s in speaker_of.items() if s in known)


def map_pathway(cond: MaskCondition, seen: bool) -> str:
    """The ``pathway`` value of the attribution that masks an utterance under ``cond``: the
    condition's pathway for a training speaker's utterance (``seen``), Traversal otherwise.

    Raises ValueError for an unseen utterance when the method explains a class only (CAMs,
    LRP): there is no class of that speaker to explain.
    """
    label = str(method_pathways(cond.method, (cond.pathway,))[0])
    if seen or label == Pathway.TRAVERSAL:
        return label
    if Pathway.TRAVERSAL in get_attributor(cond.method).pathways:
        return str(Pathway.TRAVERSAL)
    raise ValueError(
        f"mask condition {cond.name}: {cond.method} explains a training class only (pathway "
        f"{label!r}), so it cannot mask utterances of speakers the model was not trained on; "
        "use a method with a Traversal pathway (the Captum methods)"
    )


def mask_jobs(conditions: Sequence[MaskCondition], seen: bool) -> list[tuple[str, str]]:
    """The (method, pathway) attributions an utterance needs for the mask conditions."""
    return list(dict.fromkeys((c.method, map_pathway(c, seen)) for c in conditions))


def donors(utt_ids: Sequence[str], speaker_of: Mapping[str, str], seed: int) -> dict[str, str]:
    """utt_id -> the utt_id whose map it borrows: a random permutation of ``utt_ids`` in which
    no utterance gets a map of its own speaker. A bijection, so every map is used once and the
    borrowed maps have the distribution of the own maps. Deterministic in ``seed`` and in the
    SET of utterances (they are sorted first), so a rerun pairs them the same way.

    Raises ValueError when the utterances have fewer than two speakers.
    """
    utts = sorted(set(utt_ids))
    if not utts:
        return {}
    spk = [speaker_of[u] for u in utts]
    if len(set(spk)) < 2:
        raise ValueError(
            f"shuffled mask control: the {len(utts)} utterances of this group have one speaker "
            f"({spk[0]}); another speaker's map is needed"
        )
    n = len(utts)
    order = np.random.default_rng(seed).permutation(n)
    donor = np.empty(n, dtype=np.intp)
    donor[order] = np.roll(order, -1)  # a cycle through the permutation: nobody gets their own
    for i in range(n):
        if spk[donor[i]] != spk[i]:
            continue
        for j in order:  # swap with a j for which both end up with another speaker's map
            if spk[donor[j]] != spk[i] and spk[donor[i]] != spk[j]:
                donor[i], donor[j] = donor[j], donor[i]
                break
        else:
            raise ValueError(
                f"shuffled mask control: no pairing gives {utts[i]} another speaker's map "
                f"({n} utterances, {len(set(spk))} speakers)"
            )
    return {utts[i]: utts[int(donor[i])] for i in range(n)}
