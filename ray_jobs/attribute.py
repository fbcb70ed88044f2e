"""`ray job submit` entrypoint: attribution maps (Captum methods, CAMs, LRP) on an actor pool:
attributions/.

    ray job submit --working-dir . -- python ray_jobs/attribute.py --config conf/attribute.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray attribute`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("attribute")
