"""voxray.report: the self-contained HTML report of a run (report/index.html).

``load`` reads the output folder (every table optional); ``sections`` holds one module per
experiment (its tables, computed verdicts on the seed papers' claims and figures), each
registered with its heading, intro and place on the page; ``metrics``, ``profiles``,
``verdicts``, ``plots`` and ``names`` are what several sections share; ``html`` renders one
page with inline CSS and data-URI images, and ``build.build_report`` fills the registered
sections in page order (called by ``voxray.pipeline.report_stage``). The report imports
nothing from the pipeline: it reads the output tables by the names and columns of
``voxray.schema``. ``voxray.testing.synthetic_report`` writes a made-up output folder to
preview or test the report without running the pipeline.
"""
