"""The study: papermill runner, profiles, notebook helpers and the patch inspector.

Submodules, one concept each (import them explicitly, e.g.
``from rharm_lib.study import tables``; :mod:`.inspector` needs ``ipywidgets``):

- :mod:`.profiles`     :class:`StudyProfile` and the registry :data:`PROFILES` (``ci``, ``gpu``)
- :mod:`.runner`       ``rharm study``: jupytext ``.py`` -> notebook -> papermill, provenance
- :mod:`.outputs`      the output folders of a profile (``figures/<p>``, ``results/<p>``)
- :mod:`.session`      what a notebook's first cell sets up (seed, device, output folders)
- :mod:`.sources`      the study's data per profile (benchmark, training data, high-res, real)
- :mod:`.methods`      the compared methods and the Tables II/III and IV evaluations
- :mod:`.exploration`  benchmark statistics (foreground area, appearance shift)
- :mod:`.features`     encoder/decoder feature statistics (Fig. 10 analogue)
- :mod:`.reported`     the paper's published numbers, labelled "reported, not reproduced"
- :mod:`.tables`       tables as CSV + Markdown + provenance JSON
- :mod:`.plots`        image grids, mask outlines, figures saved with provenance
- :mod:`.inspector`    the ipywidgets patch inspector of L_HCL's sampling
- :mod:`.voting`       the voting widget of a user study (plan, votes CSV, ipywidgets)
- :mod:`.userstudy`    Table V re-analysis, power, Plackett-Luce/Bradley-Terry fits of votes
"""

__all__ = [
    "profiles",
    "runner",
    "outputs",
    "session",
    "methods",
    "sources",
    "exploration",
    "features",
    "reported",
    "tables",
    "plots",
    "inspector",
    "voting",
    "userstudy",
]
