"""The attribution analyses of the evaluate stage, one module each, each ``fn(ctx) -> info``
writing its own metrics/ and curves/ parts (deterministic names, so a rerun replaces them):

- ``identification``: Top-1 of the classification model on its speakers' held-out utterances;
- ``faithfulness``: deletion / insertion curves (Li et al. 2022) with Top-1 and with the
  verification score, against random and time-aligned masking, after energy VAD; pixel
  flipping (Sarvaš 2021);
- ``multispeaker``: Li et al. 2022's A-B, A-B-A, B-A-B, A-B-C localisation and recognition
  (Table 2);
- ``sanity``: cascading model-parameter and label randomisation (Adebayo et al. 2018);
- ``gender``: Sarvaš 2021's AlexNet gender classifier, LRP pixel flipping, Moore augmentation,
  retraining.

They work on fixed-length centre crops (``crops``) and explain the model as ``explain`` says.
A model evaluated on a corpus whose speakers it was not trained on has no class for them:
identification and the multi-speaker test are skipped, and faithfulness and the sanity checks
explain the embedder (Traversal) instead of the classifier's target speaker, without the Top-1
scorer and label randomisation. Each skip returns its reason in the part's info
(``skipped`` for a whole part, ``partly_skipped`` for what a part left out), which the
evaluate stage logs and the report shows.
"""

from __future__ import annotations

from typing import Any, Callable

from voxray.config import VoxrayConfig
from voxray.pipeline.analyses.faithfulness import run_faithfulness
from voxray.pipeline.analyses.gender import run_gender
from voxray.pipeline.analyses.identification import run_identification
from voxray.pipeline.analyses.multispeaker import run_multispeaker
from voxray.pipeline.analyses.sanity import run_sanity
from voxray.pipeline.context import RunContext

#: (name, function, enabled(cfg)) in the order the evaluate stage runs them.
ANALYSES: tuple[
    tuple[str, Callable[[RunContext], dict[str, Any]], Callable[[VoxrayConfig], bool]], ...
] = (
    ("identification", run_identification, lambda c: c.eval.identification),
    ("faithfulness", run_faithfulness, lambda c: c.eval.faithfulness.enabled),
    ("multispeaker", run_multispeaker, lambda c: c.eval.multispeaker.enabled),
    ("sanity", run_sanity, lambda c: c.eval.sanity.enabled),
    ("gender", run_gender, lambda c: c.eval.gender.enabled),
)
