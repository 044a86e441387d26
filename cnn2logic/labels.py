"""Names a person can read for kernels: automatic labels from class profiles, user labels.

A rule ``k6 ∧ k8 → 3`` is only as readable as ``k6`` and ``k8``.  This module gives every
kernel (every rule variable) a short **label** that the outputs show beside the program
identifier, which itself never changes:

* an **automatic label**, made at extract time from the kernel's *class profile* on the
  binarised units of the training images (:func:`class_profile`, :func:`auto_label`):
  ``on for 0, 6, 8``, ``off for 1``, ``on for most``;
* a **user label** from a JSON or CSV file ``kernel -> name`` (:func:`read_labels`),
  which replaces the automatic one wherever it is given.

Both are stored in the rules file's ``meta["kernel_labels"]`` (:func:`labels_meta`,
:func:`with_user_labels`), so ``export``, ``query``, ``graph`` and ``report`` show them
without the data; :func:`kernel_labels` is what they read.  The label text is cleaned by
:func:`cnn2logic.names.label_text` and escaped per output by the quoting functions of
:mod:`cnn2logic.names` (the one place where names are made safe).

The automatic label rule
------------------------
For a kernel, ``p`` is its on-rate over all labelled training images and ``r_c`` its
on-rate over the training images of class ``c`` (classes without images are skipped).

1. ``p = 0``: ``never on``; ``p = 1``: ``always on``.
2. ``A`` = classes with ``r_c >= p + MARGIN`` and ``r_c >= 0.5`` (the kernel is on for
   most of their images, clearly more often than overall); ``B`` = classes with
   ``r_c <= p - MARGIN`` and ``r_c <= 0.5``.
3. If ``A`` is not empty and (``B`` is empty or ``|A| <= |B|``): ``on for`` the at most
   :data:`MAX_CLASSES` classes of ``A`` with the highest ``r_c`` (ties: the earlier
   class), listed in class order (no mark for more: it was the least stable part of a
   label between training and test images).
4. Else if ``B`` is not empty: ``off for`` the at most :data:`MAX_CLASSES` classes of
   ``B`` with the lowest ``r_c``, the same way.
5. Else (no class stands out): ``on for most`` when ``p >= 0.5``, else ``on for few``.

The rule is deterministic (same bits and labels, same text).  ``MARGIN`` is
:data:`MARGIN` (0.2).  :mod:`cnn2logic.words` builds explanations in words from these
labels.

Example
-------
>>> import numpy as np
>>> bits = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
>>> y = np.array([0, 0, 1, 2])
>>> P, p = class_profile(bits, y, 3)
>>> [auto_label(p[j], P[j], ["0", "1", "2"]) for j in range(3)]
['on for 0', 'off for 2', 'off for 0']
>>> display("k12", "on for 0, 6, 8")
'k12 · on for 0, 6, 8'
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import LabelsError
from .names import LINE_BREAKS, label_text

if TYPE_CHECKING:  # annotations only: rules imports this module (its meta check)
    from .rules import RuleSet

#: ``meta`` key of the labels and the class profiles.
META_KEY = "kernel_labels"
#: How much more (less) often than overall a class must turn the kernel on (off).
MARGIN = 0.2
#: At most this many classes are named in an automatic label.
MAX_CLASSES = 3
#: A class name is cut to this many characters inside an automatic label.
CLASS_CHARS = 16
#: A label (user or automatic) has at most this many characters.
MAX_LABEL = 80
#: A label file is at most this many bytes and entries.
MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 100_000
#: The rule of :func:`auto_label`, in words (stored in meta beside the labels).
RULE_TEXT = (f"on for the classes (at most {MAX_CLASSES}) whose images turn the kernel on "
             f"at least {MARGIN:g} more often than all images do and at least half the "
             f"time; else off for those at least {MARGIN:g} less often and at most half "
             "the time; else on for most / few")


# -- class profiles and automatic labels -------------------------------------------------
def class_profile(bits: np.ndarray, labels: np.ndarray, n_classes: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """On-rate of every kernel per class, and overall.

    Parameters
    ----------
    bits : (images, kernels) bool array
        Binarised kernel units.
    labels : (images,) int array
        Class index per image; negative values (unknown) are left out.
    n_classes : int

    Returns
    -------
    (rates, overall) : float arrays of shapes (kernels, classes) and (kernels,)
        ``rates[j, c]`` is NaN for a class without images.

    Raises
    ------
    LabelsError
        Shapes that do not fit, or a label beyond ``n_classes``.
    """
    bits = np.asarray(bits, dtype=bool)
    labels = np.asarray(labels).astype(np.int64, copy=False)
    if bits.ndim != 2 or labels.shape != (len(bits),):
        raise LabelsError(f"class profile: {labels.shape} labels for bits of shape "
                          f"{bits.shape}")
    keep = labels >= 0
    bits, labels = bits[keep], labels[keep]
    if labels.size and labels.max() >= n_classes:
        raise LabelsError(f"class profile: label {int(labels.max())} but only {n_classes} "
                          "classes")
    onehot = np.zeros((len(labels), n_classes), dtype=np.float64)
    onehot[np.arange(len(labels)), labels] = 1.0
    counts = onehot.sum(axis=0)
    on = bits.astype(np.float64).T @ onehot  # (kernels, classes) images on per class
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(counts > 0, on / np.where(counts > 0, counts, 1), np.nan)
    overall = bits.mean(axis=0) if len(bits) else np.full(bits.shape[1], np.nan)
    return rates, overall


def _class_list(chosen: Sequence[int], classes: Sequence[str]) -> str:
    return ", ".join(label_text(classes[c], CLASS_CHARS) for c in sorted(chosen))


def auto_label(overall: float, rates: Sequence[float], classes: Sequence[str], *,
               margin: float = MARGIN, max_classes: int = MAX_CLASSES) -> str:
    """The automatic label of one kernel (the rule of the module docstring).

    Parameters
    ----------
    overall : float
        The kernel's on-rate over all labelled images (NaN: no images).
    rates : sequence of float
        Its on-rate per class (NaN for a class without images).
    classes : sequence of str
        The class names.

    Returns
    -------
    str
    """
    r = np.asarray(rates, dtype=np.float64)
    if not np.isfinite(overall):
        return "no data"
    if overall <= 0.0:
        return "never on"
    if overall >= 1.0:
        return "always on"
    seen = np.isfinite(r)
    high = [c for c in range(len(r)) if seen[c] and r[c] >= overall + margin - 1e-12
            and r[c] >= 0.5]
    low = [c for c in range(len(r)) if seen[c] and r[c] <= overall - margin + 1e-12
           and r[c] <= 0.5]
    if high and (not low or len(high) <= len(low)):
        top = sorted(high, key=lambda c: (-r[c], c))[:max_classes]
        return "on for " + _class_list(top, classes)
    if low:
        top = sorted(low, key=lambda c: (r[c], c))[:max_classes]
        return "off for " + _class_list(top, classes)
    return "on for most" if overall >= 0.5 else "on for few"


def auto_labels(bits: np.ndarray, labels: np.ndarray, names: Sequence[str],
                classes: Sequence[str]) -> dict[str, str]:
    """The automatic label of every kernel: ``name -> label``.

    Raises
    ------
    LabelsError
        See :func:`class_profile`; or as many names as columns are not given.
    """
    rates, overall = class_profile(bits, labels, len(classes))
    if len(names) != rates.shape[0]:
        raise LabelsError(f"{len(names)} kernel names for {rates.shape[0]} columns")
    return {n: auto_label(overall[j], rates[j], classes) for j, n in enumerate(names)}


def labels_meta(bits: np.ndarray, labels: np.ndarray, names: Sequence[str],
                classes: Sequence[str], user: Mapping[str, str] | None = None
                ) -> dict[str, Any]:
    """The ``meta["kernel_labels"]`` entry of a rules file.

    ``auto`` (name -> automatic label), ``user`` (name -> user label), ``profile``
    (name -> on-rate per class, rounded to 4 places; null for a class without images),
    ``overall`` (name -> on-rate), ``classes``, ``images`` (labelled training images) and
    ``rule`` (the rule in words).

    Raises
    ------
    LabelsError
        See :func:`auto_labels`.
    """
    rates, overall = class_profile(bits, labels, len(classes))
    auto = auto_labels(bits, labels, names, classes)

    def rnd(v: float) -> float | None:
        return None if not np.isfinite(v) else round(float(v), 4)

    return {"auto": auto, "user": dict(sorted((user or {}).items())),
            "profile": {n: [rnd(v) for v in rates[j]] for j, n in enumerate(names)},
            "overall": {n: rnd(overall[j]) for j, n in enumerate(names)},
            "classes": [str(c) for c in classes],
            "images": int((np.asarray(labels) >= 0).sum()), "rule": RULE_TEXT}


def label_agreement(a: Mapping[str, str], b: Mapping[str, str]) -> float:
    """Share of the kernels of ``a`` whose label is the same in ``b`` (stable labels).

    E.g. the automatic labels made on the training and on the test images.

    Returns
    -------
    float
        NaN when ``a`` is empty.
    """
    if not a:
        return float("nan")
    return sum(b.get(k) == v for k, v in a.items()) / len(a)


# -- reading them back ---------------------------------------------------------------------
def kernel_labels(rules: "RuleSet") -> dict[str, str]:
    """Every labelled variable of ``rules``: its user label, else its automatic one.

    Rules files without labels (older files, hand-made rule sets) give ``{}``.
    """
    entry = rules.meta.get(META_KEY) if isinstance(rules.meta, Mapping) else None
    if not isinstance(entry, Mapping):
        return {}
    known = set(rules.variable_names) | {h.name for h in rules.heads if h.kind != "class"}
    out = {k: label_text(v, MAX_LABEL) for k, v in (entry.get("auto") or {}).items()
           if k in known}
    out.update({k: label_text(v, MAX_LABEL) for k, v in (entry.get("user") or {}).items()
                if k in known})
    return out


def with_user_labels(rules: "RuleSet", user: Mapping[str, str] | None) -> "RuleSet":
    """``rules`` with ``user`` as its user labels (over those stored; None: unchanged).

    Raises
    ------
    LabelsError
        A name that is not a kernel of ``rules``.
    """
    if not user:
        return rules
    check_names(user, kernel_names(rules), "labels")
    meta = dict(rules.meta)
    entry = dict(meta.get(META_KEY) or {})
    entry["user"] = dict(sorted({**(entry.get("user") or {}), **user}.items()))
    meta[META_KEY] = entry
    return rules.replace(meta=meta)


def kernel_names(rules: "RuleSet") -> list[str]:
    """The names a label file may use: the rules' variables and derived kernels."""
    names = list(rules.variable_names)
    names += [h.name for h in rules.heads if h.kind != "class" and h.name not in names]
    return names


def display(name: str, label: str | None) -> str:
    """``k12 · on for 0, 6, 8`` (graph nodes, chips); the bare name without a label."""
    return f"{name} · {label}" if label else name


def mention(name: str, labels: Mapping[str, str]) -> str:
    """``k12 (on for 0, 6, 8)`` (sentences); the bare name without a label."""
    label = labels.get(name)
    return f"{name} ({label})" if label else name


# -- the user's label file ------------------------------------------------------------------
def _bad_char(text: str) -> str | None:
    for ch in text:
        if ch in LINE_BREAKS or ch == "\n" or unicodedata.category(ch) in ("Cc", "Cf", "Cs",
                                                                            "Zl", "Zp"):
            return ch
    return None


def check_label(name: str, label: Any, where: str) -> str:
    """One user label, checked: a non-empty string of at most :data:`MAX_LABEL` characters
    without control characters or line breaks.  Surrounding spaces are removed.

    Raises
    ------
    LabelsError
        Naming ``where``, the kernel and the value.
    """
    if not isinstance(label, str):
        raise LabelsError(f"{where}: label of {name!r} must be a string, not "
                          f"{_short(label)}")
    text = label.strip()
    if not text:
        raise LabelsError(f"{where}: label of {name!r} is empty")
    if len(text) > MAX_LABEL:
        raise LabelsError(f"{where}: label of {name!r} is {len(text)} characters (at most "
                          f"{MAX_LABEL}): {_short(text)}")
    bad = _bad_char(text)
    if bad is not None:
        raise LabelsError(f"{where}: label of {name!r} contains the control character "
                          f"{bad!r}: {_short(text)}")
    return text


def check_names(labels: Mapping[str, str], known: Iterable[str], where: str) -> None:
    """Refuse labels for kernels that do not exist.

    Raises
    ------
    LabelsError
        The first unknown kernel name, with a few known ones.
    """
    known = list(known)
    have = set(known)
    for name in labels:
        if name not in have:
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise LabelsError(f"{where}: unknown kernel {_short(name)}; kernels: {shown}")


def parse_labels(text: str, *, fmt: str, where: str = "labels",
                 known: Iterable[str] | None = None) -> dict[str, str]:
    """The labels of a label file's text.

    ``fmt="json"``: one object ``{"k12": "loop", ...}``; ``fmt="csv"``: rows ``kernel,name``
    (a first row ``kernel,name`` is a header).  Every kernel at most once; labels as
    :func:`check_label`; with ``known``, only those kernel names.

    Raises
    ------
    LabelsError
        The first problem, in one line naming the value.
    """
    if fmt == "json":
        pairs = _json_pairs(text, where)
    elif fmt == "csv":
        pairs = _csv_pairs(text, where)
    else:
        raise LabelsError(f"{where}: unknown label file format {fmt!r} (json or csv)")
    if len(pairs) > MAX_ENTRIES:
        raise LabelsError(f"{where}: {len(pairs)} labels (at most {MAX_ENTRIES})")
    out: dict[str, str] = {}
    for name, label in pairs:
        if not isinstance(name, str) or not name.strip():
            raise LabelsError(f"{where}: empty kernel name (label {_short(label)})")
        if name in out:
            raise LabelsError(f"{where}: kernel {name!r} is labelled twice")
        out[name] = check_label(name, label, where)
    if known is not None:
        check_names(out, known, where)
    return out


def _json_pairs(text: str, where: str) -> list[tuple[Any, Any]]:
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except json.JSONDecodeError as exc:
        raise LabelsError(f"{where}: not JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise LabelsError(f"{where}: not usable JSON: {str(exc)[:80]}") from None
    if not isinstance(data, list) or (data and not isinstance(data[0], tuple)):
        # the hook turns every object into a list of pairs; anything else is not one
        raise LabelsError(f"{where}: must be one JSON object {{\"k12\": \"name\", ...}}")
    return data


def _csv_pairs(text: str, where: str) -> list[tuple[str, str]]:
    pairs = []
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise LabelsError(f"{where}: not CSV: {exc}") from None
    for i, row in enumerate(rows, 1):
        if not row or all(not c.strip() for c in row):
            continue  # blank lines
        if len(row) != 2:
            raise LabelsError(f"{where}: line {i} must be 'kernel,name', not {_short(row)}")
        if i == 1 and [c.strip().lower() for c in row] == ["kernel", "name"]:
            continue
        pairs.append((row[0].strip(), row[1]))
    return pairs


def read_labels(path: str | os.PathLike[str], known: Iterable[str] | None = None
                ) -> dict[str, str]:
    """A label file (``.json``, ``.csv``; other names: JSON when it starts with ``{``).

    Raises
    ------
    LabelsError
        Missing, unreadable, too large, or any problem of :func:`parse_labels`.
    """
    p = Path(path)
    if not p.is_file():
        raise LabelsError(f"label file not found: {p}")
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise LabelsError(f"{p}: label file is larger than {MAX_FILE_BYTES} bytes")
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"cannot read label file {p}: {exc}") from None
    suffix = p.suffix.lower()
    fmt = ("json" if suffix == ".json" else "csv" if suffix == ".csv" else
           "json" if text.lstrip().startswith("{") else "csv")
    return parse_labels(text, fmt=fmt, where=str(p), known=known)


def check_meta(entry: Any) -> None:
    """Check ``meta["kernel_labels"]`` of a rules file (the strict reader calls this).

    Raises
    ------
    LabelsError
        A field of the wrong type or size (the message names it).
    """
    where = f"meta.{META_KEY}"
    if not isinstance(entry, Mapping):
        raise LabelsError(f"{where} must be an object")
    for key in ("auto", "user"):
        value = entry.get(key, {})
        if not isinstance(value, Mapping) or len(value) > MAX_ENTRIES:
            raise LabelsError(f"{where}.{key} must be an object of at most {MAX_ENTRIES} "
                              "labels")
        for name, label in value.items():
            if not isinstance(label, str) or len(label) > MAX_LABEL:
                raise LabelsError(f"{where}.{key}.{_short(name)} must be a string of at "
                                  f"most {MAX_LABEL} characters, not {_short(label)}")
    classes = entry.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise LabelsError(f"{where}.classes must be a list of strings")
    profile = entry.get("profile", {})
    if not isinstance(profile, Mapping) or len(profile) > MAX_ENTRIES:
        raise LabelsError(f"{where}.profile must be an object")
    for name, rates in profile.items():
        if not isinstance(rates, list) or len(rates) != len(classes) or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                              and 0 <= v <= 1) for v in rates):
            raise LabelsError(f"{where}.profile.{_short(name)} must be {len(classes)} "
                              "rates in 0..1 (or null)")
    overall = entry.get("overall", {})
    if not isinstance(overall, Mapping) or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                          and 0 <= v <= 1) for v in overall.values()):
        raise LabelsError(f"{where}.overall must be an object of rates in 0..1")
    if type(entry.get("images", 0)) is not int or not isinstance(entry.get("rule", ""), str):
        raise LabelsError(f"{where}: images must be an integer and rule a string")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: The help of every command's ``--labels`` option.
LABELS_HELP = ("kernel labels to show: a JSON object {\"k12\": \"loop\", ...} or CSV rows "
               "kernel,name (they replace the automatic labels of those kernels)")


def apply_label_file(rules: "RuleSet", path: str | os.PathLike[str] | None) -> "RuleSet":
    """``rules`` with the labels of the file ``path`` (None: ``rules`` unchanged).

    Raises
    ------
    LabelsError
        See :func:`read_labels` (the kernels must be those of ``rules``).
    """
    if not path:
        return rules
    return with_user_labels(rules, read_labels(path, kernel_names(rules)))
