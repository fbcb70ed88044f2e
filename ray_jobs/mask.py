"""`ray job submit` entrypoint: attribution x input, thresholded masks and Moore-neighbourhood
augmentation: masked/.

The options of `voxray mask`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("mask")
