"""`ray job submit` entrypoint: attribution maps (Captum methods, CAMs, LRP) on an actor pool:
attributions/.

The options of `voxray attribute`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("attribute")
