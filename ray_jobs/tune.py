"""`ray job submit` entrypoint: Ray Tune sweep over mask threshold, method/pathway, LRP
epsilon/gamma and CAM layers: tune/.

The options of `voxray tune`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("tune")
