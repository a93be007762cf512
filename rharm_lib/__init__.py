"""rharm: a reproducible study and library of *Image Harmonization with Region-wise
Contrastive Learning* (Liang & Pun).

Modules, one concept each (layered, see ``docs/ARCHITECTURE.md``):

- :mod:`rharm_lib.batch`       the batch vocabulary (``composite``, ``mask``, ``target``, ``pred``) and checks
- :mod:`rharm_lib.metrics`     paper-convention metrics (MSE, PSNR, SSIM, fMSE, fSSIM)
- :mod:`rharm_lib.data`        readers, composite synthesis, built-in data, region masks
- :mod:`rharm_lib.baselines`   classical baselines (composite, Reinhard, histogram matching)
- :mod:`rharm_lib.model`       ResUNet + S²AM + external style fusion
- :mod:`rharm_lib.losses`      L1, L_pixel and the region-wise contrastive loss
- :mod:`rharm_lib.inference`   :class:`~rharm_lib.inference.Harmonizer` (a checkpoint as a function)
- :mod:`rharm_lib.checkpoint`  checkpoint I/O; :mod:`rharm_lib.config_io` config (de)serialisation
- :mod:`rharm_lib.evaluate`    the evaluation protocol's result files, several methods in one table
- :mod:`rharm_lib.train`       the training engine
- :mod:`rharm_lib.study`       papermill runner and notebook helpers
- :mod:`rharm_lib.seed`        the one determinism helper
- :mod:`rharm_lib.device`      the one device rule (``auto``, ``cpu``, ``cuda``)
- :mod:`rharm_lib.provenance`  commit / versions / device records attached to every artefact
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
