"""`ray job submit` entrypoint: check an output folder against the output contract (exit 1 and
each problem printed when it does not meet it).

    ray job submit --working-dir . -- python ray_jobs/check.py s3://bucket/voxray-out \
        [corpus.s3.endpoint_url=http://host:9000]

Takes the same arguments as `voxray check`.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("check")
