"""`ray job submit` entrypoint: Ray Tune sweep over mask threshold, method/pathway, LRP
epsilon/gamma and CAM layers: tune/.

    ray job submit --working-dir . -- python ray_jobs/tune.py --config conf/tune.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray tune`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("tune")
