"""Training speaker models on Ray Train.

``data`` (random / centre crops for ``map_batches``), ``schedule`` (LR schedules as functions
of the step), ``loop`` (the per-worker function), ``trainer`` (``train_model``), ``tune``.
"""
