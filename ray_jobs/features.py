"""`ray job submit` entrypoint: decode audio and compute Kaldi fbank/MFCC on a Ray Data actor pool:
features/.

    ray job submit --working-dir . -- python ray_jobs/features.py --config conf/features.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray features`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("features")
