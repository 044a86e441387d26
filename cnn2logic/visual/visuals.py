"""The visuals of one layer's kernels (:class:`KernelVisuals`) and their files.

:func:`write_visuals` writes a directory: one PNG per kernel and kind under ``kernels/``,
``grid.png``, the arrays (``visuals.npz``), the kernels' evidence (``evidence.json``, the
patch strips ``kernels/*_patches.png`` and class profiles ``kernels/*_profile.png``,
when computed) and, last, the manifest ``visuals.json``;
:func:`load_visuals` reads it back.  :func:`match_kernels` pairs rule variables with the
kernels of a :class:`KernelVisuals` (:func:`kernel_index`: with the kernels of a layer).
Computing them is :func:`cnn2logic.visual.kernels.visualize`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from .._io import atomic_path, atomic_write_bytes, atomic_write_text
from ..errors import VisualizationError
from ..names import NameTable
from ..unitnames import kernel_of
from .evidence import (KernelEvidence, evidence_arrays, evidence_from_arrays,
                       selectivity_margins)
from .images import grid_png, kernel_pngs, patch_strip_png, profile_png
from .saliency import WRAPPED

MANIFEST = "visuals.json"
ARRAYS = "visuals.npz"
MANIFEST_FORMAT = "cnn2logic-visuals"
EVIDENCE = "evidence.json"


@dataclass(frozen=True)
class KernelVisuals:
    """What :func:`cnn2logic.visual.kernels.visualize` computed for every kernel of a layer.

    Arrays are indexed by kernel (0-based, ``names[i]`` is kernel ``i``); optional parts
    are None when they were not computed.  ``actmax`` may have been computed for some
    kernels only (``cnn2logic report``: the kernels its rules read): the others' images
    are all NaN (:attr:`actmax_kernels`, :meth:`actmax_image`) and ``params`` lists the
    computed ones as ``actmax_kernels``.
    """

    layer: str
    names: tuple[str, ...]
    smoothgrad: np.ndarray
    params: Mapping[str, Any]
    filters: np.ndarray | None = None
    correlation: np.ndarray | None = None
    response: np.ndarray | None = None
    top_index: np.ndarray | None = None
    top_values: np.ndarray | None = None
    top_images: np.ndarray | None = None
    actmax: np.ndarray | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    directory: str | None = None
    evidence: KernelEvidence | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def actmax_kernels(self) -> tuple[int, ...]:
        """The kernels (0-based) with an activation-maximisation image; () without any."""
        if self.actmax is None:
            return ()
        missing = np.isnan(np.asarray(self.actmax)).all(axis=tuple(range(1, self.actmax.ndim)))
        return tuple(int(i) for i in np.flatnonzero(~missing))

    def actmax_image(self, i: int) -> np.ndarray | None:
        """Kernel ``i``'s activation-maximisation image (c, h, w), or None when it has none.

        Parameters
        ----------
        i : int
            0-based kernel index.

        Returns
        -------
        ndarray or None
        """
        if self.actmax is None or np.isnan(self.actmax[i]).all():
            return None
        return self.actmax[i]

    @property
    def selectivity(self) -> float:
        """Share of kernels whose displayed evidence drives their own unit more than any
        other kernel's evidence does (:mod:`cnn2logic.visual.evidence`); without evidence,
        that of the SmoothGrad images."""
        if self.evidence is not None:
            return self.evidence.selectivity()
        return self.smoothgrad_selectivity

    @property
    def smoothgrad_selectivity(self) -> float:
        """Share of kernels whose SmoothGrad image (as an image) drives their own unit more
        than any other kernel's image does (NaN when the response was not computed)."""
        if self.response is None:
            return float("nan")
        return float(np.mean(selectivity_margins(self.response) > 0))

    def summary(self) -> dict[str, Any]:
        """JSON-able figures: parameters, correlations, selectivity, timings.

        Returns
        -------
        dict
            ``layer``, ``n_kernels``, ``params``, ``seconds`` and, when computed,
            ``filter_correlation``, ``mean_filter_correlation``, ``self_response`` and
            ``selectivity`` (rounded to 4 decimals).
        """
        out: dict[str, Any] = {
            "layer": self.layer,
            "n_kernels": len(self.names),
            "params": dict(self.params),
            "seconds": {k: round(float(v), 4) for k, v in self.seconds.items()},
        }
        if self.correlation is not None:
            out["filter_correlation"] = {
                n: round(float(c), 4) for n, c in zip(self.names, self.correlation)
            }
            out["mean_filter_correlation"] = round(float(np.mean(self.correlation)), 4)
        if self.response is not None:
            out["self_response"] = {
                n: round(float(self.response[i, i]), 4) for i, n in enumerate(self.names)
            }
            out["smoothgrad_selectivity"] = round(self.smoothgrad_selectivity, 4)
            out["selectivity"] = round(self.selectivity, 4)
        if self.evidence is not None:
            ev = self.evidence.summary()
            out["selectivity"] = ev["selectivity"]
            out["selectivity_by_kind"] = ev["selectivity_by_kind"]
            out["evidence"] = {k: v for k, v in ev.items()
                               if k not in ("selectivity", "selectivity_by_kind")}
        return out

    def image_path(self, kernel: str, kind: str = "smoothgrad") -> Path | None:
        """Path of a written PNG (``kind``: smoothgrad, filter, top, actmax, patches,
        profile), if any.

        Parameters
        ----------
        kernel : str
            The kernel's name (one of ``names``).
        kind : str

        Returns
        -------
        Path or None
            None when the visuals were not written or have no such picture.
        """
        rel = self.files.get(kernel, {}).get(kind)
        if rel is None or self.directory is None:
            return None
        return Path(self.directory) / rel



def match_kernels(variables: Sequence[Any], vis: KernelVisuals) -> dict[str, int]:
    """Rule variable name -> kernel index in ``vis``, for the variables that are its kernels.

    :func:`kernel_index` with the layer and kernel names of ``vis``.

    Parameters
    ----------
    variables : sequence of Variable
        The rule variables (:attr:`cnn2logic.rules.RuleSet.variables`).
    vis : KernelVisuals

    Returns
    -------
    dict
        Variable name -> 0-based kernel index in ``vis``.
    """
    return kernel_index(variables, vis.layer, vis.names)


def kernel_index(variables: Sequence[Any], layer: str, names: Sequence[str]
                 ) -> dict[str, int]:
    """Rule variable name -> kernel index, for the variables that are kernels of ``layer``.

    A plain unit of ``layer`` is matched by its ``index``; a unit of one kernel at one
    map position or threshold level (``k3_r1c2``, ``k3_2``:
    :func:`cnn2logic.unitnames.kernel_of`), a bit of the tuned layer that wraps ``layer``
    and a variable without a layer (``k3``, or qualified, ``pool.k3``) by the kernel its
    name says.  Others are left out.  (Before the visuals exist, ``names`` is
    :func:`cnn2logic.units.kernel_names` of the layer's kernel count.)

    Parameters
    ----------
    variables : sequence of Variable
        The rule variables (:attr:`cnn2logic.rules.RuleSet.variables`).
    layer : str
        The kernels' layer.
    names : sequence of str
        The kernels' names (``names[i]`` is kernel ``i``).

    Returns
    -------
    dict
        Variable name -> 0-based kernel index.
    """
    by_name = {n: i for i, n in enumerate(names)}
    # the kernels of a tuned network's thresholded layer are drawn from the layer it wraps
    # (saliency.units_layer): its bits ``k3`` or, with several levels, ``k3_1, k3_2``
    # are kernel 3's
    wrapper = layer[:-len(WRAPPED) - 1] if layer.endswith(f".{WRAPPED}") else None
    out: dict[str, int] = {}
    for v in variables:
        name = v.name
        if not v.layer and "." in name:  # a qualified name says its layer
            prefix, name = name.rsplit(".", 1)
            if prefix != layer:
                continue
        elif v.layer and v.layer not in (layer, wrapper):
            continue
        k = kernel_of(name)
        kernel = by_name.get(f"k{k}") if k is not None else None
        if v.layer == layer and (kernel is None or name == f"k{k}"):
            # a plain unit of the layer: its index is its kernel
            if 0 <= v.index < len(names):
                out[v.name] = int(v.index)
        elif kernel is not None:
            # one kernel at one map position (k3_r1c2) or level (k3_2): the index counts
            # units, the name says the kernel
            out[v.name] = kernel
        elif name in by_name:
            out[v.name] = by_name[name]
    return out



def write_visuals(vis: KernelVisuals, out_dir: str | os.PathLike[str], *,
                  progress: bool = True) -> KernelVisuals:
    """Write PNGs, ``grid.png``, the arrays (``visuals.npz``) and ``visuals.json``.

    Every file is written atomically; ``visuals.json`` is written last, so a directory
    with a manifest is complete.

    Parameters
    ----------
    vis : KernelVisuals
    out_dir : path
        Created if missing.
    progress : bool
        A progress bar over the kernels.

    Returns
    -------
    KernelVisuals
        ``vis`` with ``files`` and ``directory`` set.

    Raises
    ------
    VisualizationError
        ``out_dir`` exists and is not a directory.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VisualizationError(f"{out} exists and is not a directory")
    (out / "kernels").mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    stems = NameTable("k", vis.names)
    items = range(len(vis))
    if progress:
        items = tqdm(items, desc="write PNGs", unit="kernel", leave=False)
    for i in items:
        name = vis.names[i]
        files[name] = {}
        pngs = kernel_pngs(vis, i)
        ev = vis.evidence
        if ev is not None:
            pngs["patches"] = patch_strip_png(ev.patches[i])
            if ev.on_share is not None:
                pngs["profile"] = profile_png(ev.on_share[i], ev.classes)
        for kind, data in pngs.items():
            rel = f"kernels/{stems[name]}_{kind}.png"
            atomic_write_bytes(out / rel, data)
            files[name][kind] = rel
    atomic_write_bytes(out / "grid.png", grid_png(vis))
    arrays = {"smoothgrad": vis.smoothgrad}
    for key in ("filters", "correlation", "response", "top_index", "top_values",
                "top_images", "actmax"):
        val = getattr(vis, key)
        if val is not None:
            arrays[key] = np.asarray(val)
    if vis.evidence is not None:
        arrays.update(evidence_arrays(vis.evidence))
        # no timings here (they are in visuals.json): same inputs, same bytes
        doc = {"format": "cnn2logic-evidence", "version": 1, "layer": vis.layer,
               **{k: v for k, v in vis.evidence.summary().items() if k != "seconds"},
               "kernels": [vis.evidence.kernel_record(i) for i in range(len(vis))]}
        atomic_write_text(out / EVIDENCE, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    with atomic_path(out / ARRAYS, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "kernels": [{"name": n, "layer": vis.layer, "index": i, "files": files[n]}
                    for i, n in enumerate(vis.names)],
        "grid": "grid.png",
        "arrays": ARRAYS,
        **({"evidence_file": EVIDENCE} if vis.evidence is not None else {}),
        **vis.summary(),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return _replace(vis, files=files, directory=str(out))


def load_visuals(directory: str | os.PathLike[str]) -> KernelVisuals:
    """Read what :func:`write_visuals` wrote.

    Parameters
    ----------
    directory : path
        The directory holding ``visuals.json``.

    Returns
    -------
    KernelVisuals
        With ``files`` and ``directory`` set.

    Raises
    ------
    VisualizationError
        No manifest, a manifest of another format, or missing arrays.
    """
    d = Path(directory)
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise VisualizationError(f"{d}: no {MANIFEST} (run `cnn2logic visualize` first)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VisualizationError(f"{mpath}: unreadable manifest: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise VisualizationError(f"{mpath}: not a cnn2logic visuals manifest")
    try:
        with np.load(d / manifest.get("arrays", ARRAYS), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        kernels = manifest["kernels"]
        names = tuple(str(k["name"]) for k in kernels)
        files = {str(k["name"]): dict(k.get("files", {})) for k in kernels}
        layer = str(manifest["layer"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise VisualizationError(f"{d}: incomplete visuals ({exc!r})") from None
    if "smoothgrad" not in arrays or len(arrays["smoothgrad"]) != len(names):
        raise VisualizationError(f"{d}: {ARRAYS} does not match {MANIFEST}")
    evidence = None
    if manifest.get("evidence_file"):
        try:
            doc = json.loads((d / manifest["evidence_file"]).read_text(encoding="utf-8"))
            evidence = evidence_from_arrays(doc, arrays, names)
        except (OSError, json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise VisualizationError(f"{d}: unreadable evidence ({exc!r})") from None
    return KernelVisuals(
        layer, names, arrays["smoothgrad"], dict(manifest.get("params", {})),
        arrays.get("filters"), arrays.get("correlation"), arrays.get("response"),
        arrays.get("top_index"), arrays.get("top_values"), arrays.get("top_images"),
        arrays.get("actmax"),
        dict(manifest.get("seconds", {})), files, str(d), evidence,
    )


def _replace(vis: KernelVisuals, **changes: Any) -> KernelVisuals:
    return replace(vis, **changes)
