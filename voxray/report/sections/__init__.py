"""The report's sections, one module per experiment: its tables, verdicts and figures, and the
fill function it registers (``base.section``). Importing this package registers them all;
``base.in_page_order`` lists them as the page shows them:

stages, verification, reliability, clustering, sweeps003, identification, frequency, heatmaps,
thresholds, trials, faithfulness, multispeaker, mixtures, flipping, sanity, xai, embeddings,
training, tune,
quarantine, config.
"""

from voxray.report.sections import (  # noqa: F401  (registers the sections)
    clustering,
    config,
    embeddings,
    faithfulness,
    flipping,
    frequency,
    heatmaps,
    identification,
    mixtures,
    multispeaker,
    quarantine,
    reliability,
    sanity,
    stages,
    sweeps003,
    thresholds,
    training,
    trials,
    tune,
    verification,
    xai,
)
from voxray.report.sections.base import (
    SECTIONS,
    ReportContext,
    SectionSpec,
    in_page_order,
)

__all__ = ["SECTIONS", "ReportContext", "SectionSpec", "in_page_order"]
