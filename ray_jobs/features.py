"""`ray job submit` entrypoint: decode audio and compute Kaldi fbank/MFCC on a Ray Data actor pool:
features/.

The options of `voxray features`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("features")
