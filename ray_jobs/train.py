"""`ray job submit` entrypoint: train the speaker model (ECAPA-TDNN by default) on the training
speakers with Ray Train: models/<name>/.

The options of `voxray train`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("train")
