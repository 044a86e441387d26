"""How kernel units are named, in one place: ``k3``, ``k3_r1c2``, ``k3_2``.

Capture names one unit per kernel ``k1..kK`` (1-based, like the paper's x1..x10); with
``reduce="position"`` one unit per kernel and map position, ``k3_r1c2`` (kernel 3, row 1,
column 2); a tuned network's thresholded layer with several levels, ``k3_1, k3_2, ..``
(kernel 3 at or above its first, second.. threshold).  :func:`kernel_of` reads any of them
back to its kernel, so the report pairs every variable with the right kernel's pictures.

This module imports nothing of the package: the units, the model and the visuals all
name or read units through it.

Example
-------
>>> position_names("pool", 1, 1, 2)
('k1_r1c1', 'k1_r1c2')
>>> level_names(2, 2)
('k1_1', 'k1_2', 'k2_1', 'k2_2')
>>> [kernel_of(n) for n in ("k3", "pool.k3_r1c2", "k12_2", "x1")]
[3, 3, 12, None]
"""

from __future__ import annotations

import re

__all__ = ["kernel_names", "position_names", "level_names", "kernel_of", "position_of"]

# kernel, then at most one of: a map position (_r1c2) or a threshold level (_2)
_UNIT = re.compile(r"k([1-9][0-9]*)(?:_r([1-9][0-9]*)c([1-9][0-9]*)|_[1-9][0-9]*)?")


def kernel_names(layer: str, n: int, qualified: bool = False) -> tuple[str, ...]:
    """``k1..kn`` (1-based, like the paper's x1..x10), or ``<layer>.k1..`` when qualified.

    Parameters
    ----------
    layer : str
        The layer's name (the prefix when ``qualified``).
    n : int
        Number of kernels.
    qualified : bool
        Prefix every name with ``<layer>.``.

    Returns
    -------
    tuple of str
    """
    prefix = f"{layer}." if qualified else ""
    return tuple(f"{prefix}k{i}" for i in range(1, n + 1))


def position_names(layer: str, kernels: int, rows: int, cols: int,
                   qualified: bool = False) -> tuple[str, ...]:
    """One unit per kernel and position: ``k1_r1c1, k1_r1c2, ...`` (flatten order).

    Parameters
    ----------
    layer : str
        The layer's name (the prefix when ``qualified``).
    kernels, rows, cols : int
        The shape of one image's maps.
    qualified : bool
        Prefix every name with ``<layer>.``.

    Returns
    -------
    tuple of str
    """
    prefix = f"{layer}." if qualified else ""
    return tuple(f"{prefix}k{k}_r{r}c{c}" for k in range(1, kernels + 1)
                 for r in range(1, rows + 1) for c in range(1, cols + 1))


def level_names(kernels: int, levels: int) -> tuple[str, ...]:
    """Bits of a layer with ``levels`` thresholds per kernel: ``k1..kK`` with one level,
    else ``k1_1, k1_2, ..`` (kernel 1 at or above its first, second... threshold).

    Parameters
    ----------
    kernels, levels : int

    Returns
    -------
    tuple of str
    """
    if levels == 1:
        return kernel_names("", kernels)
    return tuple(f"k{k + 1}_{lv + 1}" for k in range(kernels) for lv in range(levels))


def kernel_of(name: str) -> int | None:
    """The 1-based kernel a unit name belongs to, or None for a name not made here.

    Parameters
    ----------
    name : str
        ``k3``, ``k3_r1c2``, ``k3_2``, optionally qualified (``pool.k3``).

    Returns
    -------
    int or None
    """
    match = _UNIT.fullmatch(name.rsplit(".", 1)[-1])
    return int(match.group(1)) if match else None


def position_of(name: str) -> tuple[int, int] | None:
    """The 1-based map position ``(row, col)`` of a position unit (``k3_r1c2``: (1, 2)),
    or None for any other name.

    Parameters
    ----------
    name : str
        Optionally qualified (``pool.k3_r1c2``).

    Returns
    -------
    (int, int) or None

    Example
    -------
    >>> position_of("pool.k3_r1c2"), position_of("k3_2")
    ((1, 2), None)
    """
    match = _UNIT.fullmatch(name.rsplit(".", 1)[-1])
    return (int(match.group(2)), int(match.group(3))) if match and match.group(2) else None
