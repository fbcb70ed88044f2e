"""voxray.corpus: the input side.

``records`` (Utterance, Trial, SpeakerMeta, QuarantineRecord), ``lists`` (parsers of the
published VoxCeleb text files, ``safe_relpath``), ``layout`` (``scan_corpus`` over a
VoxCeleb1/VoxCeleb2 tree, local or s3://), ``audio`` (``probe_audio`` / ``load_audio``),
and the demo-corpus synthesiser ``synth`` (with ``synth_plan``, ``synth_audio``,
``synth_trials``). Import the submodules directly; this package imports nothing heavy.
"""
