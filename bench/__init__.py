"""voxray benchmarks: ``python -m bench <stage> [--quick]`` or ``python -m bench all --quick``.

Each benchmark measures voxray and a naive baseline (what a user of torchaudio, Captum or
PyTorch would write) on the same inputs in the same run, prints what helps a reader and
ends with one JSON line of figures (see design.md, "Benchmarks").
"""
