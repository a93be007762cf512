"""Evaluate a harmonization method on a dataset with ground truth, writing result files.

:func:`evaluate` runs a method over every sample, computes the per-image metrics of
:mod:`rharm_lib.metrics` and writes, into ``out_dir``:

- ``per_image.csv``: one row per image: ``subset, name``, the metrics, ``fg_pixels`` (the
  foreground's pixel count at the evaluation size), ``height, width`` (native size);
- ``summary.csv``: one row per subset plus ``All`` with columns
  ``subset,n,mse,psnr,psnr_peak,fmse,ssim,fssim,n_fg_skipped``;
- ``summary.md``: the same as a Markdown table;
- ``provenance.json``: git commit, package versions, date, device, the protocol
  (:data:`rharm_lib.metrics.PROTOCOL`), the method and the data.

Atomicity: ``out_dir`` is checked before the first image (a file, a read-only place, a
folder holding other files are refused at once, :func:`rharm_lib.outputs.check_output_dir`);
nothing is written until every image has been evaluated; the files then go to a temporary
directory next to ``out_dir`` (``.<name>.tmp-<pid>``) that is renamed to ``out_dir`` with a
manifest (:func:`rharm_lib.outputs.publish_dir`). A failure (unreadable file, sizes that
disagree, Ctrl-C) leaves no ``out_dir`` that looks complete. An existing ``out_dir`` is
replaced only when it holds nothing but a previous result (the files its manifest lists,
or these four files).

Memory: the metrics need about :data:`EVAL_BYTES_PER_PIXEL` bytes per pixel of the
evaluation size (float64 SSIM maps of three channels; measured 238 B/px at 2048²);
:func:`check_eval_size` refuses a size whose estimate exceeds the memory available.

Decision -- methods see the evaluation-size inputs: by default (``run_at_eval_size=True``)
the composite, mask and target are resized to ``eval_size`` first (PIL bilinear / nearest,
as in :mod:`rharm_lib.metrics`) and the method runs on the resized composite and mask,
as iHarmony4 methods are evaluated (their loaders resize to 256 before the network).
``run_at_eval_size=False`` runs the method at the native resolution and resizes its
prediction afterwards (clamped and rounded to uint8 first).

Methods: a callable taking a sample dict ``{"composite", "mask", "name", "subset"}``
(no ``target``) -- what :func:`resolve_method` returns -- or a callable of two arguments
``(composite (H,W,3) uint8, mask (H,W) uint8 {0,1})`` such as a
:data:`rharm_lib.baselines.BASELINES` entry or a :class:`rharm_lib.inference.Harmonizer`.
Either returns the prediction ``(H,W,3)``: uint8, or float on the 0-255 scale.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .baselines import BASELINES
from .device import resolve_device
from .errors import RharmInputError
from .inference import Harmonizer
from .metrics import (
    EVAL_SIZE,
    METRICS,
    PROTOCOL,
    SUMMARY_COLUMNS,
    image_metrics,
    prepare_for_eval,
    resize_image,
    resize_mask,
    summarize,
    summary_markdown,
)
from .model import count_params
from .outputs import check_output_dir, publish_dir, tmp_sibling
from .provenance import portable_paths, provenance, write_json_atomic
from .weights import shipped_weights_path

__all__ = [
    "METHODS",
    "RESULT_FILES",
    "check_eval_out",
    "PER_IMAGE_COLUMNS",
    "evaluate",
    "evaluate_methods",
    "check_eval_size",
    "EVAL_BYTES_PER_PIXEL",
    "method_params",
    "resolve_method",
    "SampleMethod",
]

#: files written by :func:`evaluate` (an ``out_dir`` holding only these may be replaced)
RESULT_FILES = ("per_image.csv", "summary.csv", "summary.md", "provenance.json")
#: peak bytes per evaluation pixel of the metrics (measured 238 at 2048², rounded up)
EVAL_BYTES_PER_PIXEL = 256


def _available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` of ``/proc/meminfo``), or ``None``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_eval_size(eval_size: int | None, available: int | None = None) -> None:
    """Refuse an evaluation size that is not an int >= 11 or ``None`` (native), or whose
    memory estimate (``EVAL_BYTES_PER_PIXEL * eval_size**2``) exceeds the memory available
    (``available`` bytes; default: what the system reports now).

    Raises:
        RharmInputError: with the estimate, e.g. ``--eval-size 99999 needs about 2560 GB``.
    """
    if eval_size is None:
        return
    if not isinstance(eval_size, int | np.integer) or isinstance(eval_size, bool) or eval_size < 11:
        raise RharmInputError(
            f"eval_size must be an int >= 11 (the SSIM window) or None, got {eval_size!r}"
        )
    need = EVAL_BYTES_PER_PIXEL * int(eval_size) ** 2
    have = _available_memory() if available is None else available
    if have is not None and need > have:
        raise RharmInputError(
            f"--eval-size {eval_size} needs about {need / 1e9:,.1f} GB per image for the "
            f"metrics ({EVAL_BYTES_PER_PIXEL} B/px) but {have / 1e9:,.1f} GB are available; choose a "
            "smaller size or 'native'"
        )


#: columns of ``per_image.csv``
PER_IMAGE_COLUMNS = ("subset", "name", *METRICS, "fg_pixels", "height", "width")


class SampleMethod:
    """A method as :func:`evaluate` calls it: ``m(sample) -> (H,W,3) uint8``.

    Args:
        name: the registry name (recorded in provenance).
        fn: ``fn(composite (H,W,3) uint8, mask (H,W) uint8) -> (H,W,3) uint8``.
        device: where it runs (recorded in provenance).
        info: extra provenance (checkpoint path, step ...).
    """

    def __init__(
        self, name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], device: str = "cpu",
        info: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.name, self.fn, self.device, self.info = name, fn, device, dict(info or {})

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        return self.fn(sample["composite"], sample["mask"])

    def __repr__(self) -> str:
        return f"SampleMethod({self.name!r}, device={self.device!r})"


def _baseline_factory(name: str) -> Callable[[str | None, str], SampleMethod]:
    def make(checkpoint: str | None, device: str) -> SampleMethod:
        if checkpoint is not None:
            raise RharmInputError(
                f"--checkpoint is only used with --method checkpoint, not {name!r}"
            )
        return SampleMethod(name, BASELINES[name], "cpu")

    return make


def _checkpoint_method(checkpoint: str | None, device: str) -> SampleMethod:
    if checkpoint is None:
        raise RharmInputError(
            "--method checkpoint needs --checkpoint PATH (a checkpoint of rharm train)"
        )
    if not Path(checkpoint).is_file():
        raise RharmInputError(f"{checkpoint}: no such checkpoint file")
    dev = str(resolve_device(device))
    h = Harmonizer.from_checkpoint(checkpoint, dev)
    info = {"checkpoint": str(checkpoint), **dict(getattr(h, "meta", {}) or {})}
    return SampleMethod("checkpoint", h, dev, info)


def _shipped_method(checkpoint: str | None, device: str) -> SampleMethod:
    """The weights shipped with the package (:mod:`rharm_lib.weights`)."""
    path = shipped_weights_path()
    if not path.is_file():
        raise RharmInputError(
            f"no shipped weights at {path}; produce them with: rharm study --profile cpu --only 02"
        )
    m = _checkpoint_method(str(path), device)
    return SampleMethod("shipped", m.fn, m.device, {**m.info, "shipped": True})


#: registry: method name -> factory ``(checkpoint, device) -> SampleMethod``
METHODS: dict[str, Callable[[str | None, str], SampleMethod]] = {
    "composite": _baseline_factory("composite"),
    "reinhard": _baseline_factory("reinhard"),
    "histmatch": _baseline_factory("histmatch"),
    "checkpoint": _checkpoint_method,
    "shipped": _shipped_method,
}


def resolve_method(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    device: str = "auto",
    working_size: int | None = None,
) -> SampleMethod:
    """A method by registry name, as a callable on samples.

    Args:
        name: one of :data:`METHODS` (``composite``, ``reinhard``, ``histmatch``,
            ``checkpoint``).
        checkpoint: the checkpoint file for ``checkpoint`` (loaded with
            ``rharm_lib.inference.Harmonizer.from_checkpoint``, imported only then).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` ...; used by
            ``checkpoint`` only (the baselines run on the CPU).
        working_size: networks only (``checkpoint``, ``shipped``): ``None`` runs the network
            on the image it is given (native mode); an int runs it at that long side and
            lifts the change to the image's size (``Harmonizer.harmonize(mode="fast")``),
            e.g. the side the network was trained at.

    Returns:
        A :class:`SampleMethod`: ``m(sample) -> (H,W,3) uint8`` with ``.name``,
        ``.device`` and ``.info``.

    Raises:
        RharmInputError: an unknown name (listing the known ones), a missing checkpoint.
    """
    if name not in METHODS:
        raise RharmInputError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    method = METHODS[name](None if checkpoint is None else str(checkpoint), device)
    if working_size is None:
        return method
    harmonizer = method.fn
    if not hasattr(harmonizer, "harmonize"):
        raise RharmInputError(f"--working-size applies to networks only, not to {name!r}")
    if working_size < 8:
        raise RharmInputError(f"working size must be >= 8 pixels, got {working_size}")

    def fast(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return harmonizer.harmonize(composite, mask, mode="fast", working_size=working_size)

    info = {**method.info, "mode": "fast", "working_size": int(working_size)}
    return SampleMethod(method.name, fast, method.device, info)


def _arity(method: Callable[..., Any]) -> int:
    """Number of required positional parameters (1 = sample dict, 2 = composite, mask)."""
    if isinstance(method, SampleMethod):
        return 1
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _method_name(method: Any) -> str:
    return str(
        getattr(method, "name", None) or getattr(method, "__name__", None) or type(method).__name__
    )


def check_eval_out(out_dir: str | os.PathLike) -> Path:
    """Check, before any work, that a result folder can be written at ``out_dir``
    (:func:`rharm_lib.outputs.check_output_dir`; a folder of a previous result, and only
    that, may be replaced)."""
    return check_output_dir(out_dir, overwrite=True, legacy=RESULT_FILES)


def _write_result(out_dir: Path, files: Mapping[str, str], prov: Mapping[str, Any]) -> None:
    """Write the result files into a temporary sibling directory, then rename it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for fname, text in files.items():
            (tmp / fname).write_text(text)
        write_json_atomic(tmp / "provenance.json", prov, portable=True)
        publish_dir(tmp, out_dir, "rharm evaluate", legacy=RESULT_FILES)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def evaluate(
    dataset: Sequence[Mapping[str, Any]],
    method: Callable[..., np.ndarray],
    out_dir: str | os.PathLike,
    eval_size: int | None = EVAL_SIZE,
    progress: bool = True,
    run_at_eval_size: bool = True,
    method_name: str | None = None,
    extra_provenance: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate ``method`` on ``dataset`` and write the result files atomically.

    Args:
        dataset: a sequence of reader samples with ground truth (``composite``, ``target``
            ``(H,W,3)`` uint8 sRGB, ``mask`` ``(H,W)`` uint8 {0,1}, ``name``, ``subset``),
            e.g. :class:`rharm_lib.data.ihd.IHDDataset`.
        method: ``m(sample) -> (H,W,3)`` or ``m(composite, mask) -> (H,W,3)``, uint8 or
            float on the 0-255 scale (see the module docstring).
        out_dir: the result directory (must not hold files other than a previous result's).
        eval_size: the evaluation side (default 256); ``None`` = native resolution.
        progress: show a tqdm progress bar on stderr.
        run_at_eval_size: run the method on the inputs resized to ``eval_size`` (default,
            the iHarmony4 convention) instead of the native ones.
        method_name: the name recorded in provenance and ``summary.md`` (default: the
            method's ``name`` attribute or function name).
        extra_provenance: more fields for ``provenance.json`` (e.g. the data's origin).

    Returns:
        ``(per_image, summary)`` DataFrames (columns :data:`PER_IMAGE_COLUMNS` and
        :data:`rharm_lib.metrics.SUMMARY_COLUMNS`).

    Raises:
        RharmInputError: an empty dataset, a sample without target, a prediction whose
            shape differs from the composite's, an ``out_dir`` holding other files, and
            every reader error (missing/unreadable file, sizes that disagree).
    """
    from tqdm import tqdm

    out_dir = check_eval_out(out_dir)
    check_eval_size(eval_size)
    if eval_size is not None:
        eval_size = int(eval_size)
    n = len(dataset)
    if n == 0:
        raise RharmInputError("the dataset has no images")
    name = method_name or _method_name(method)
    two_args = _arity(method) >= 2
    resize_first = run_at_eval_size and eval_size is not None
    rows = []
    for i in tqdm(
        range(n), desc=f"evaluate {name}", unit="img", file=sys.stderr, disable=not progress
    ):
        s = dataset[i]
        if s.get("target") is None:
            raise RharmInputError(
                f"sample {i} ({s.get('subset')}/{s.get('name')}) has no target: evaluation needs ground truth"
            )
        comp, mask, target = s["composite"], s["mask"], s["target"]
        h, w = comp.shape[:2]
        if resize_first:
            comp, mask, target = (
                resize_image(comp, eval_size),
                resize_mask(mask, eval_size),
                resize_image(target, eval_size),
            )
        else:
            mask = resize_mask(mask, None)
        inp = {"composite": comp, "mask": mask, "name": s["name"], "subset": s["subset"]}
        pred = method(comp, mask) if two_args else method(inp)
        pred = np.asarray(pred)
        if pred.shape != comp.shape:
            raise RharmInputError(
                f"method {name!r} returned shape {pred.shape} for composite {comp.shape} "
                f"({s['subset']}/{s['name']})"
            )
        p, t, m = prepare_for_eval(pred, target, mask, eval_size)
        rows.append(
            {"subset": s["subset"], "name": s["name"], **image_metrics(p, t, m),
             "fg_pixels": int(m.sum()), "height": int(h), "width": int(w)}
        )  # fmt: skip
    per_image = pd.DataFrame(rows, columns=list(PER_IMAGE_COLUMNS))
    summary = summarize(per_image)
    device = getattr(method, "device", None)
    prov = provenance(
        device=device if isinstance(device, str) and device != "auto" else "cpu",
        method=name,
        method_info=dict(getattr(method, "info", {}) or {}),
        protocol={
            **PROTOCOL,
            "eval_size": eval_size,
            "method_input": "eval size" if resize_first else "native",
        },
        data=str(getattr(dataset, "root", "")) or None,
        split=getattr(dataset, "split", None),
        n_images=n,
        summary_columns=list(SUMMARY_COLUMNS),
        **dict(extra_provenance or {}),
    )
    title = (
        f"**{name}** on {portable_paths(prov['data']) or 'the dataset'}"
        + (f" ({prov['split']} split)" if prov["split"] else "")
        + f", evaluated at {eval_size or 'native'} px"
    )
    files = {
        "per_image.csv": per_image.to_csv(index=False),
        "summary.csv": summary.to_csv(index=False),
        "summary.md": summary_markdown(summary, title),
    }
    _write_result(out_dir, files, prov)
    return per_image, summary


def method_params(method: Any) -> int:
    """Learned parameters of a method that runs a network (0 for the classical baselines).

    Looks through a :class:`SampleMethod` to its function, and counts the parameters of the
    ``net`` of a :class:`~rharm_lib.inference.Harmonizer` (or anything with a ``net``).
    """
    fn = method.fn if isinstance(method, SampleMethod) else method
    net = getattr(fn, "net", None)
    return count_params(net) if net is not None else 0


def _folder(label: str, method: Any) -> str:
    """The result folder of a method: its registry name (``checkpoint`` -> ``model``), else
    its label made file-safe."""
    name = getattr(method, "name", None)
    if name:
        return "model" if name == "checkpoint" else str(name)
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in label)


def evaluate_methods(
    dataset: Sequence[Mapping[str, Any]],
    methods: Mapping[str, Callable[..., np.ndarray]],
    out_dir: str | os.PathLike,
    *,
    prefix: str = "",
    folders: Mapping[str, str] | None = None,
    eval_size: int | None = EVAL_SIZE,
    run_at_eval_size: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate several methods on one dataset with :func:`evaluate`; one table of summaries.

    Each method writes its result files into ``out_dir/<prefix><folder>``; the folder is
    ``folders[label]`` when given, else the method's registry name (``checkpoint`` ->
    ``model``), else its label made file-safe.

    Args:
        dataset: reader samples with ground truth (see :func:`evaluate`).
        methods: label -> method (what :func:`evaluate` accepts), in table order.
        out_dir: the parent folder of the methods' result folders.
        prefix: prepended to each folder name (``"benchmark_"``, ``"highres_512_"``).
        folders: label -> folder name, overriding the default.
        eval_size, run_at_eval_size, progress: as in :func:`evaluate`.

    Returns:
        A DataFrame with columns ``method`` (the label), then
        :data:`rharm_lib.metrics.SUMMARY_COLUMNS` (``subset`` … ``n_fg_skipped``), then
        ``params_M`` (:func:`method_params` in millions); per method, one row per subset in
        the dataset's order and ``All``; methods in the order of ``methods``.

    Raises:
        RharmInputError: no methods, and every error of :func:`evaluate`.
    """
    if not methods:
        raise RharmInputError("evaluate_methods: no methods to evaluate")
    frames = []
    for label, method in methods.items():
        folder = (folders or {}).get(label) or _folder(label, method)
        _, summary = evaluate(
            dataset,
            method,
            Path(out_dir) / f"{prefix}{folder}",
            eval_size=eval_size,
            progress=progress,
            run_at_eval_size=run_at_eval_size,
            method_name=label,
        )
        f = summary.copy()
        f.insert(0, "method", label)
        f["params_M"] = method_params(method) / 1e6
        frames.append(f)
    return pd.concat(frames, ignore_index=True)
