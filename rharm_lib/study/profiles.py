"""Study profiles: one frozen dataclass per way of running the study.

A profile fixes everything that sizes the study (data sources, model config, training
steps, image counts, evaluation sizes), so that ``rharm study --profile ci`` and
``rharm study --profile gpu`` are each one reproducible command. Notebooks receive the
profile's *name* as a papermill parameter and look the rest up here with
:func:`get_profile`: the sizes live in one place, never in the notebooks.

Profiles (the registry :data:`PROFILES`):

- ``ci``: CPU, the built-in data (no download), the small ``ci`` model config; the whole
  study in at most 10 minutes on 2 CPU cores (measured; see ``docs/study.md``).
- ``gpu``: one CUDA device, the paper model config trained on the lalonde photos,
  evaluated on the lalonde test benchmark; sized for at most 9 minutes on one H100/H200.
  That time is an *estimate* from the training engine's stated throughput, not a
  measurement (no GPU was lent to the session that wrote it).

Every profile has a *reduced* variant, :func:`reduced` (``get_profile(name, reduced=True)``,
or ``$RHARM_STUDY_REDUCED=1`` in the environment, which is how the kernels of
``rharm study --reduced`` see it): the same notebooks and library code paths -- the same
model config, training and ablation code, data kinds, table and figure writers -- on the
CPU at a few training steps and a handful of images, so that the test suite runs every
profile's notebooks (``tests/test_study_reduced.py``) and a GPU user is never the first to
run the ``gpu`` profile's code. Its numbers mean nothing, and it writes outside the
repository's ``results/``, ``figures/`` and ``runs/`` (:mod:`rharm_lib.study.outputs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import RharmInputError
from .ablations import AblationScale
from .outputs import reduced_requested
from .sources import REDUCED_SOURCES

__all__ = ["StudyProfile", "PROFILES", "get_profile", "reduced"]


@dataclass(frozen=True)
class StudyProfile:
    """Everything that sizes one run of the study.

    Attributes:
        name: the profile's name (``ci``, ``gpu``); outputs go to ``figures/<name>/`` and
            ``results/<name>/``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available, else CPU).
        torch_threads: ``torch.set_num_threads`` in every notebook (``None``: torch's
            default). ``ci`` uses 1: on a shared 2-core machine two OpenMP threads per
            process spin-wait for each other and ran the ci training 3-4x slower.
        seed: the seed every notebook passes to :func:`rharm_lib.seed.seed_everything`.
        train_config: a key of :data:`rharm_lib.train.TRAIN_CONFIGS` (``ci`` or ``paper``;
            each uses the model config of the same name in :data:`rharm_lib.model.CONFIGS`).
        train_source: training photos: ``"builtin"`` or ``"lalonde"`` (the folder
            ``data_root()/lalonde``).
        benchmark: the fixed test benchmark: ``"builtin"`` (built by
            :func:`rharm_lib.data.benchmark.ensure_builtin_benchmark`) or ``"lalonde"``
            (written once from the lalonde test split into the cache).
        train_steps: optimiser steps of the training notebook.
        batch_size: training batch size.
        photo_size: side the training photos are decoded to (``None``: the config's).
        crop_size: side of the random training crops (``None``: the config's).
        eval_every: steps between the training run's evaluations (the curves' points).
        train_eval_images: benchmark images of those evaluations (0 = all); the tables of
            notebook 02 always use the whole benchmark.
        eval_size: evaluation size of the Table II/III analogue (the iHarmony4 convention
            is 256).
        max_eval_images: cap on benchmark composites evaluated per method (``None`` = all).
        highres_source: ``"builtin"`` (the built-in photos, upsampled) or ``"highres"``
            (``data_root()/highres``) for the Table IV analogue.
        highres_count: number of high-resolution photos used (each one composite).
        highres_sizes: evaluation resolutions of the Table IV analogue.
        highres_working_sizes: working sizes (long side) of the fast full-resolution mode
            (:func:`rharm_lib.fullres.harmonize_fast`) compared beside native mode in the
            Table IV analogue; 512 is ``rharm harmonize``'s default, 256 a cheaper one (at an
            evaluation size no larger than the working size, fast mode is native mode).
        real_per_source: real composites shown per source (``lalonde_``, ``dih_`` ...).
        real_long_side: long side larger real composites are resized to before the
            methods run (``None``: each at its own resolution, up to 1024 px).
        grid_images: rows of the qualitative grids (Fig. 4 style).
        feature_images: images of the Fig. 10 feature-map figure.
        inspector_k: default K of the patch inspector.
        estimated_minutes: the documented wall-time budget of the whole study.
        measured: whether ``estimated_minutes`` was checked by a real run on the target
            machine (``False`` marks an estimate that was never run).
        note: one line shown in every table's provenance.
        seeds: training seeds of notebook 02 (one finished run each, reused when present);
            the Table II/III analogue reports the model's mean ± sd over them.
        ablation: the scale of notebook 03's ablation runs
            (:class:`~rharm_lib.study.ablations.AblationScale`; ``rharm ablate``).
        ship_weights: notebook 02 writes the first seed's model as the package's shipped
            weights (:func:`rharm_lib.weights.export_weights`); only the ``cpu`` profile.
        diagnose: ``(images, size, steps)`` of the L_HCL diagnosis in notebook 01
            (:func:`rharm_lib.diagnose.diagnose_loss`: composites of the training photos,
            their side, Adam steps of the pixel optimisation).
        check_rtol: relative tolerance of trained-model rows in ``rharm study --check``,
            derived from the measured seed-to-seed spread of this profile (``docs/study.md``);
            rows without training are always checked to 1e-6.
        compile: ``torch.compile`` of notebook 02's training (``None``: the training
            config's own setting).
        reduced: a reduced run of the profile of the same name (:func:`reduced`): code
            paths only, the numbers mean nothing.
    """

    name: str
    device: str
    torch_threads: int | None
    seed: int
    train_config: str
    train_source: str
    benchmark: str
    train_steps: int
    batch_size: int
    photo_size: int | None
    crop_size: int | None
    eval_every: int
    train_eval_images: int
    eval_size: int
    max_eval_images: int | None
    highres_source: str
    highres_count: int
    highres_sizes: tuple[int, ...]
    real_per_source: int
    grid_images: int
    feature_images: int
    inspector_k: int
    estimated_minutes: float
    measured: bool
    note: str
    seeds: tuple[int, ...] = (0,)
    check_rtol: float = 0.25
    diagnose: tuple[int, int, int] = (4, 64, 15)
    ship_weights: bool = False
    ablation: AblationScale | None = None
    highres_working_sizes: tuple[int, ...] = (256, 512)
    compile: bool | None = None
    real_long_side: int | None = None
    reduced: bool = False

    def to_dict(self) -> dict:
        """The profile as a JSON-serialisable dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["highres_sizes"] = list(self.highres_sizes)
        d["highres_working_sizes"] = list(self.highres_working_sizes)
        d["seeds"] = list(self.seeds)
        d["diagnose"] = list(self.diagnose)
        return d


#: the registry of study profiles (name -> profile)
PROFILES: dict[str, StudyProfile] = {
    # Budget on 2 CPU cores (10 min in all): training 400 steps ~2.5-3.5 min, the five
    # kernels' start-up and imports ~0.5 min, four methods on the 20 built-in composites
    # ~0.5 min, four photos at up to 1024^2 ~1 min, feature maps and 12 real composites at
    # their own resolution (up to 1024 px) ~1 min, plots ~0.5 min.
    "ci": StudyProfile(
        name="ci",
        device="cpu",
        torch_threads=1,
        seed=0,
        train_config="ci",
        train_source="builtin",
        benchmark="builtin",
        train_steps=400,
        batch_size=8,
        photo_size=None,
        crop_size=None,
        eval_every=100,
        train_eval_images=0,
        eval_size=256,
        max_eval_images=None,
        highres_source="builtin",
        highres_count=4,
        highres_sizes=(256, 512, 1024),
        real_per_source=3,
        grid_images=6,
        feature_images=3,
        inspector_k=16,
        estimated_minutes=10.0,
        measured=True,
        # measured with tools/seed_spread.py --profile ci --seeds 0,1,2: the largest relative
        # deviation of a seed from the seed mean is 0.126 (MSE), so two independent runs
        # differ by up to ~0.25; 0.3 leaves a margin
        check_rtol=0.3,
        # notebook 03's smoke: 15 distinct runs of 20 steps (the code path of every
        # ablation, labelled as such; says nothing about the method)
        ablation=AblationScale(
            train_config="ci",
            steps=20,
            photo_size=72,
            crop_size=64,
            eval_every=10,
            eval_images=0,
            seeds=(0,),
            k_seeds=(0,),
            smoke=True,
            train_in_notebook=True,
        ),
        note="ci profile: CPU, built-in data, ci model config; a smoke-scale study of the "
        "pipeline, not the paper's numbers. Its model, trained for 400 steps on five built-in "
        "photos, does not beat the input composite on fMSE or PSNR: it says nothing about the "
        "method (docs/training.md, 'The ci profile cannot show learning within its limits'; "
        "the cpu profile is the evidence)",
    ),
    # The CPU-scale study of the method (docs/training.md, "The cpu config"): the paper's
    # network at the cpu width trained on the 1,612 lalonde training photos, 3 seeds, each
    # a finished run reused by notebook 02 (train ahead: rharm study --profile cpu
    # --train-seed S). Evaluated on the full lalonde test benchmark at 256^2.
    "cpu": StudyProfile(
        name="cpu",
        device="cpu",
        torch_threads=None,
        seed=0,
        train_config="cpu",
        train_source="lalonde",
        benchmark="lalonde",
        train_steps=2000,
        batch_size=8,
        photo_size=None,
        crop_size=None,
        eval_every=500,
        train_eval_images=150,
        eval_size=256,
        max_eval_images=None,
        highres_source="highres",
        highres_count=12,
        # the paper's Table IV sizes, plus 2048 (issue 11: fast vs native at full resolution)
        highres_sizes=(256, 512, 1024, 2048),
        real_per_source=6,
        grid_images=8,
        feature_images=4,
        inspector_k=64,
        estimated_minutes=30.0,
        measured=False,
        note="cpu profile: the paper's network at the cpu width, trained on the lalonde "
        "photos on 2 CPU cores; evaluated on the lalonde test benchmark",
        seeds=(0, 1, 2),
        check_rtol=0.25,
        diagnose=(8, 96, 50),
        ship_weights=True,
        # the ablation scale (docs/study.md, "Ablations"): the cpu network on 112² photos
        # cropped to 96², 600 steps of the cpu recipe (cosine lr 5e-4), uncompiled (compiling
        # costs more than it saves on a short run), 200 benchmark composites spread over the
        # four families; 3 seeds (Table VI, fusion, readings), 2 for Table VII. Chosen by
        # measurement: at 400 steps the full network without L_HCL reached only 0.83x the
        # composite's fMSE (row 1: 0.96x); at 600 steps the full model reaches ~0.6-0.7x
        ablation=AblationScale(
            train_config="cpu",
            steps=600,
            photo_size=112,
            crop_size=96,
            eval_every=100,
            eval_images=200,
            seeds=(0, 1, 2),
            k_seeds=(0, 1),
        ),
    ),
    # Sized for <= 9 minutes on one H100/H200 -- an ESTIMATE, never run (no GPU was lent to
    # the session that wrote it). Training: 1,500 steps x 64 images = 96k composites of the
    # 1,599 lalonde training photos (~60 epochs), at the 350-700 img/s the training engine
    # targets for the paper config (bf16, channels_last) = 2.3-4.6 min, plus two evaluations
    # on 400 benchmark images. The rest (~4 min): building the lalonde benchmark once
    # (1,548 PNGs), four methods on its 1,548 composites (CPU metrics), 12 high-resolution
    # photos at up to 1024 px, feature maps, real composites, five kernel start-ups.
    "gpu": StudyProfile(
        name="gpu",
        device="cuda",
        torch_threads=None,
        seed=0,
        train_config="paper",
        train_source="lalonde",
        benchmark="lalonde",
        train_steps=1500,
        batch_size=64,
        photo_size=None,
        crop_size=None,
        eval_every=750,
        train_eval_images=400,
        eval_size=256,
        max_eval_images=None,
        highres_source="highres",
        highres_count=12,
        # the paper's Table IV sizes, plus 2048 (issue 11: fast vs native at full resolution)
        highres_sizes=(256, 512, 1024, 2048),
        real_per_source=6,
        grid_images=8,
        feature_images=4,
        inspector_k=64,
        estimated_minutes=9.0,
        measured=False,
        note="gpu profile: paper config on the lalonde benchmark; the 9-minute budget "
        "is an estimate, not a measured run",
        # the paper's network and crops; 3,000 steps x 8 images per run (an ESTIMATE of
        # ~2-4 min per run on one H100/H200, never run). Not part of `rharm study`'s
        # 9 minutes: train ahead with `rharm ablate FAMILY --profile gpu`.
        ablation=AblationScale(
            train_config="paper",
            steps=3000,
            photo_size=256,
            crop_size=256,
            eval_every=500,
            eval_images=400,
            seeds=(0, 1, 2),
            k_seeds=(0, 1),
        ),
    ),
}


#: wall-time budget of a reduced study of any profile on 2 idle CPU cores: an ESTIMATE
#: from the reduced ci study's 89 s of CPU time (docs/study.md, "Reduced runs"; the
#: machine was never idle while it was measured, and the paper network of the gpu
#: profile costs more)
REDUCED_MINUTES = 2.0


def reduced(profile: StudyProfile) -> StudyProfile:
    """The reduced variant of ``profile``: its code paths at a few steps on the CPU.

    What stays: the name (outputs go to ``figures/<name>``, ``results/<name>`` under the
    reduced run's root), the training and ablation configs (the ``gpu`` profile's
    ``paper`` network, 29.6 M parameters, included), the kinds of data source, the number
    of seeds up to two (so the cross-seed statistics run), shipping weights (to a file under
    the run's root, never the package's: :func:`rharm_lib.study.sources.shipped_weights_target`).

    What shrinks (decided for speed; ``docs/study.md``, "Reduced runs"): CPU with one torch
    thread; the lalonde photos become the ``lalonde-subset`` kind (the first 16 training
    and 4 test photos, :data:`rharm_lib.study.sources.SUBSET_PHOTOS`: the full lalonde
    benchmark takes minutes to build on a fresh machine); 2 training steps of batch 2 on
    32² crops of 40² photos, evaluated after each step on 4 benchmark composites at 64²;
    8 composites in the Table II/III analogue; 2 high-resolution photos at long sides 64
    and 96; one real composite per source, at most 128 px on its long side (the paper
    network at 1024 px takes tens of seconds per image on one core); 2 grid rows, 1
    feature-map image, K = 4 in the inspector; a 2-image, 2-step loss diagnosis; every
    ablation run (all 15) at 1 step of one seed; no ``torch.compile`` (compiling takes
    longer than the whole reduced run; the real ``cpu`` runs exercise it). Reducing a
    reduced profile returns it unchanged.
    """
    if profile.reduced:
        return profile
    abl = profile.ablation
    small_abl = None
    if abl is not None:
        small_abl = AblationScale(
            train_config=abl.train_config,
            steps=1,
            photo_size=40,
            crop_size=32,
            eval_every=1,
            eval_images=4,
            seeds=abl.seeds[:1],
            k_seeds=abl.k_seeds[:1],
            lr=abl.lr,
            compile=False,
            smoke=True,
            train_in_notebook=True,
        )
    return dataclasses.replace(
        profile,
        device="cpu",
        torch_threads=1,
        train_source=REDUCED_SOURCES[profile.train_source],
        benchmark=REDUCED_SOURCES[profile.benchmark],
        train_steps=2,
        batch_size=2,
        photo_size=40,
        crop_size=32,
        eval_every=1,
        train_eval_images=4,
        eval_size=64,
        max_eval_images=8,
        highres_count=min(2, profile.highres_count),
        highres_sizes=(64, 96),
        real_per_source=1,
        real_long_side=128,
        grid_images=2,
        feature_images=1,
        inspector_k=4,
        estimated_minutes=REDUCED_MINUTES,
        measured=False,
        note=f"REDUCED run of the {profile.name} profile (the test suite's check of its code "
        "paths: a few steps on the CPU); the numbers mean nothing",
        seeds=profile.seeds[:2],
        diagnose=(2, 32, 2),
        compile=False,
        ablation=small_abl,
        reduced=True,
    )


def get_profile(name: str, reduced: bool | None = None) -> StudyProfile:
    """The profile called ``name``; :class:`RharmInputError` listing the known ones.

    Args:
        name: a key of :data:`PROFILES`.
        reduced: return its reduced variant (:func:`reduced`); default
            ``$RHARM_STUDY_REDUCED`` (:func:`rharm_lib.study.outputs.reduced_requested`),
            which is how the kernels of a reduced study see it.
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        raise RharmInputError(
            f"unknown study profile {name!r}; known profiles: {', '.join(sorted(PROFILES))}"
        ) from None
    if reduced_requested() if reduced is None else reduced:
        return _reduce(profile)
    return profile


_reduce = reduced
