"""Measure rules against the data and the network: every reading side by side.

``rule_accuracy``
    the rules replace the output layer (first satisfied rule in rank order, else the
    default class) and are scored against the true labels;
``fidelity``
    the same predictions scored against the network's own predictions;
``coverage`` / ``zero_fire`` / ``multi_fire``
    the share of images where exactly one / no / several classes fire;
``fired_precision``
    accuracy on the images where at least one rule fires (and the share they make up);
``binarized_network_accuracy``
    the network's own output layer applied to the binarised units;
``ceiling_oracle`` / ``ceiling_lookup``
    the best any Boolean function of the binarised units can do on the test set (the
    majority label of each test code, an upper bound no extractor can pass), and the
    accuracy of a lookup table learned on the training codes.

Example
-------
>>> import numpy as np
>>> ceilings(np.array([[0], [0], [1]], bool), np.array([0, 1, 1]),
...          np.array([[0], [1]], bool), np.array([0, 1]))
{'ceiling_oracle': 1.0, 'ceiling_lookup': 1.0}
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from .rules import Rule, RuleSet


def rule_stats(rules: RuleSet, X: np.ndarray, y: np.ndarray | None = None) -> list[dict]:
    """Per rule: ``support`` (rows satisfying it) and, with ``y``, ``precision``."""
    sat = rules.rule_matrix(X)
    head_index = {h: i for i, h in enumerate(rules.head_names)}
    out = []
    for r, rule in enumerate(rules.rules):
        cover = sat[:, r]
        support = int(cover.sum())
        stats: dict[str, float] = {"order": len(rule.body), "support": support}
        if y is not None:
            hits = int((np.asarray(y)[cover] == head_index[rule.head]).sum())
            stats["precision"] = round(hits / support, 6) if support else 0.0
        out.append(stats)
    return out


def rank_rules(rules: RuleSet, X: np.ndarray | None = None, y: np.ndarray | None = None,
               default: str | None = "auto") -> RuleSet:
    """Order rules best first and attach their statistics.

    Rank: precision on ``(X, y)`` (descending), support (descending), fewer literals,
    head order, then the literals themselves — a total order, so output is deterministic.
    ``default="auto"`` picks the most frequent ``y`` among rows no rule covers (all rows
    when every row is covered; ties go to the lower class index).
    """
    head_index = {h: i for i, h in enumerate(rules.head_names)}
    if X is not None:
        stats = rule_stats(rules, X, y)
    else:
        stats = [{"order": len(r.body)} for r in rules.rules]

    def key(item: tuple[Rule, dict]) -> tuple:
        rule, st = item
        return (-st.get("precision", 0.0), -st.get("support", 0), len(rule.body),
                head_index[rule.head], rule.min_true or -1,
                tuple((l.var, l.positive) for l in rule.body))

    ordered = sorted(zip(rules.rules, stats), key=key)
    new = tuple(Rule(r.head, r.body, r.min_true, st) for r, st in ordered)
    ranked = rules.replace(rules=new)
    if default == "auto":
        default = _auto_default(ranked, X, y)
    return ranked.replace(default=default)


def _auto_default(rules: RuleSet, X: np.ndarray | None, y: np.ndarray | None) -> str | None:
    if X is None or y is None or len(y) == 0:
        return rules.default if rules.default is not None else (
            rules.heads[0].name if rules.heads else None)
    uncovered = ~rules.rule_matrix(X).any(axis=1)
    pool = np.asarray(y)[uncovered] if uncovered.any() else np.asarray(y)
    counts = np.bincount(pool, minlength=len(rules.heads))
    return rules.heads[int(np.argmax(counts))].name


def ceilings(train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray,
             test_y: np.ndarray) -> dict[str, float]:
    """Lookup-table ceilings (see the module docstring)."""
    def majority(X, y):
        table: dict[bytes, Counter] = {}
        for row, label in zip(np.packbits(X, axis=1), y):
            table.setdefault(row.tobytes(), Counter())[int(label)] += 1
        return {k: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, c in table.items()}

    test_keys = [r.tobytes() for r in np.packbits(test_X, axis=1)]
    oracle = majority(test_X, test_y)
    learned = majority(train_X, train_y)
    fallback = int(np.bincount(train_y).argmax()) if len(train_y) else 0
    oracle_acc = np.mean([oracle[k] == t for k, t in zip(test_keys, test_y)])
    lookup_acc = np.mean([learned.get(k, fallback) == t for k, t in zip(test_keys, test_y)])
    return {"ceiling_oracle": round(float(oracle_acc), 6),
            "ceiling_lookup": round(float(lookup_acc), 6)}


def evaluate_rules(rules: RuleSet, X: np.ndarray, labels: np.ndarray,
                   network_pred: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, fidelity, coverage and firing statistics of ``rules`` on codes ``X``.

    ``labels`` and ``network_pred`` are class indices into ``rules.heads``.
    """
    labels = np.asarray(labels)
    pred = rules.predict_index(X)
    fires = rules.fires(X)
    n_fire = fires.sum(axis=1)
    any_fire = n_fire > 0
    out: dict[str, Any] = {
        "images": int(len(labels)),
        "rule_accuracy": _mean(pred == labels),
        "coverage": _mean(n_fire == 1),
        "zero_fire": _mean(n_fire == 0),
        "multi_fire": _mean(n_fire > 1),
        "fired_share": _mean(any_fire),
        "fired_precision": _mean((pred == labels)[any_fire]) if any_fire.any() else None,
        "decision": "first satisfied rule in rank order; default class "
                    f"{rules.default!r} when none is",
    }
    if network_pred is not None:
        network_pred = np.asarray(network_pred)
        out["fidelity"] = _mean(pred == network_pred)
        out["network_accuracy"] = _mean(network_pred == labels)
        out["fired_fidelity"] = (_mean((pred == network_pred)[any_fire])
                                 if any_fire.any() else None)
    return out


def binarized_network_accuracy(weight: np.ndarray, bias: np.ndarray, X: np.ndarray,
                               labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The output layer applied to binary units: accuracy and predictions."""
    z = np.asarray(X, dtype=np.float64) @ np.asarray(weight, np.float64).T + bias
    pred = z.argmax(axis=1)
    return _mean(pred == labels), pred


def confusion(rows: np.ndarray, cols: np.ndarray, n: int) -> list[list[int]]:
    """Counts ``[row class][col class]``; a column ``n`` collects ``-1`` (no prediction)."""
    m = np.zeros((n, n + 1), dtype=int)
    for r, c in zip(rows, cols):
        m[int(r), int(c) if c >= 0 else n] += 1
    return m.tolist()


def select_table_terms(rules: RuleSet, X: np.ndarray, labels: np.ndarray,
                       test_X: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                       min_support_fraction: float = 0.01) -> list[dict]:
    """One short, accurate product term per class, as in the paper's Table 1.

    Among the class's conjunctions covering at least ``min_support_fraction`` of that
    class's training images: highest precision against the true labels, then fewer
    literals, then higher support.  Precision and recall are also given on the test set.
    """
    head_index = {h: i for i, h in enumerate(rules.head_names)}
    sat = rules.rule_matrix(X)
    sat_test = rules.rule_matrix(test_X) if test_X is not None else None
    table = []
    for head in rules.head_names:
        c = head_index[head]
        n_class = int((labels == c).sum())
        min_support = max(1, int(np.ceil(min_support_fraction * n_class)))
        best = None
        for r, rule in enumerate(rules.rules):
            if rule.head != head or not rule.is_conjunction:
                continue
            support = int(sat[:, r].sum())
            if support < min_support:
                continue
            precision = float((labels[sat[:, r]] == c).mean())
            key = (-round(precision, 9), len(rule.body), -support)
            if best is None or key < best[0]:
                best = (key, r, rule, support, precision)
        entry: dict[str, Any] = {"class": head, "body": None}
        if best is not None:
            _, r, rule, support, precision = best
            entry.update({
                "body": [[l.var, l.positive] for l in rule.body],
                "text": rule.format(),
                "literals": len(rule.body),
                "train_support": support,
                "train_precision": round(precision, 6),
                "train_recall": round(float((labels[sat[:, r]] == c).sum()) / max(n_class, 1), 6),
            })
            if sat_test is not None:
                cover = sat_test[:, r]
                n_test = int((test_labels == c).sum())
                entry["test_support"] = int(cover.sum())
                entry["test_precision"] = (round(float((test_labels[cover] == c).mean()), 6)
                                           if cover.any() else None)
                entry["test_recall"] = round(float((test_labels[cover] == c).sum())
                                             / max(n_test, 1), 6)
        table.append(entry)
    return table


def term_counts(rules: RuleSet) -> dict[str, float]:
    """How many rules (terms) and literals ``rules`` has, and literals per rule."""
    lengths = [len(r.body) for r in rules.rules]
    return {"terms": len(lengths), "literals": int(sum(lengths)),
            "mean_literals": round(float(np.mean(lengths)), 4) if lengths else 0.0}


def _mean(a: Sequence[bool] | np.ndarray) -> float:
    a = np.asarray(a)
    return round(float(a.mean()), 6) if a.size else float("nan")
