"""voxray.report: the self-contained HTML report of a run (report/index.html).

``load`` reads the output folder (every table optional), ``tables`` and ``verdicts`` turn
the metrics into display tables and computed verdicts on the seed papers' claims,
``plots`` draws the figures as PNG bytes, ``html`` renders one page with inline CSS and
data-URI images, and ``build.build_report`` ties them together (called by
``voxray.pipeline.report_stage``). The report imports nothing from the pipeline: it reads the
output tables by the names and columns of ``voxray.schema``. ``voxray.testing.synthetic_report``
writes a made-up output folder to preview or test the report without running the pipeline.
"""
