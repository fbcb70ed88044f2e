"""voxray.report: the self-contained HTML report of a run (report/index.html).

``load`` reads the output folder (every table optional), ``tables`` and ``verdicts`` turn
the metrics into display tables and computed verdicts on the seed papers' claims,
``plots`` draws the figures as PNG bytes, ``html`` renders one page with inline CSS and
data-URI images, and ``build.build_report`` ties them together (called by
``voxray.pipeline.report_stage``). ``synthetic`` writes a made-up output folder to preview
or test the report without running the pipeline.
"""
