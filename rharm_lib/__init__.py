"""rharm: a reproducible study and library of *Image Harmonization with Region-wise
Contrastive Learning* (Liang & Pun).

Modules, one concept each:

- :mod:`rharm_lib.batch`       the batch vocabulary (``composite``, ``mask``, ``target``, ``pred``) and checks
- :mod:`rharm_lib.metrics`     paper-convention metrics (MSE, PSNR, SSIM, fMSE, fSSIM)
- :mod:`rharm_lib.data`        readers, composite synthesis, built-in data, region masks
- :mod:`rharm_lib.baselines`   classical baselines (composite, Reinhard, histogram matching)
- :mod:`rharm_lib.model`       ResUNet + S²AM + external style fusion
- :mod:`rharm_lib.losses`      L1, L_pixel and the region-wise contrastive loss
- :mod:`rharm_lib.train`       the training engine
- :mod:`rharm_lib.study`       papermill runner and notebook helpers
- :mod:`rharm_lib.seed`        the one determinism helper
- :mod:`rharm_lib.provenance`  commit / versions / device records attached to every artefact
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
