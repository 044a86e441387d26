"""Readable Markdown: the paper's Table 1 per class, the metrics, and every rule.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1"), Variable("k2")), (Head("3"),),
...              (Rule("3", (Literal("k2", False), Literal("k1"))),))
>>> print(rules_section(rs).splitlines()[-1])
| 3 | k1 ∧ ¬k2 |
"""

from __future__ import annotations

from typing import Any, Mapping

from ..labels import META_KEY as LABELS_KEY, kernel_labels
from ..names import markdown_text
from ..rules import RuleSet

METRIC_ROWS = (
    ("network_accuracy", "network accuracy (test)"),
    ("binarized_network_accuracy", "network on binarised kernel units"),
    # when the output layer does not read the kernel units directly (extract/rest.py):
    ("network_on_bits_fidelity", "rest of the network on binarised units: fidelity"),
    ("network_on_bits_accuracy", "rest of the network on binarised units: accuracy"),
    ("rule_accuracy", "rule accuracy (rules replace the output layer)"),
    ("fidelity", "fidelity to the network"),
    ("coverage", "coverage (exactly one class fires)"),
    ("zero_fire", "no class fires (default class used)"),
    ("multi_fire", "several classes fire (first rule in rank order used)"),
    ("fired_precision", "accuracy where some rule fires"),
    ("table_precision", "accuracy of the Table-1 terms where one fires"),
    ("table_fired_share", "share of images where a Table-1 term fires"),
    ("ceiling_oracle", "ceiling: best Boolean function of the units (test majority per code)"),
    ("ceiling_lookup", "lookup table per code learned on training images"),
    ("terms", "terms (after minimisation)"),
    ("mean_literals", "literals per term"),
)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def metrics_table(metrics: dict[str, Any], paper: dict[str, float] | None = None) -> str:
    """The metrics as a Markdown table, with the paper's figure beside ours when known."""
    head = "| measure | value |" + (" paper |" if paper else "")
    sep = "|---|---:|" + ("---:|" if paper else "")
    lines = [head, sep]
    for key, label in METRIC_ROWS:
        if key not in metrics:
            continue
        row = f"| {label} | {_fmt(metrics[key])} |"
        if paper:
            row += f" {_fmt(paper.get(key))} |"
        lines.append(row)
    return "\n".join(lines)


def table1(table: list[dict]) -> str:
    """One short, accurate term per class (the paper's Table 1)."""
    lines = ["| class | term | literals | test precision | test recall |",
             "|---|---|---:|---:|---:|"]
    for entry in table:
        if entry.get("body") is None:
            lines.append(f"| {entry['class']} | (no term with enough support) | | | |")
            continue
        lines.append(f"| {entry['class']} | {entry['text']} | {entry['literals']} | "
                     f"{_fmt(entry.get('test_precision'))} | {_fmt(entry.get('test_recall'))} |")
    return "\n".join(lines)


def rules_section(rules: RuleSet) -> str:
    """Every rule: a decision list top to bottom, else grouped by head in rank order."""
    if rules.meta.get("ordered"):
        # Order is meaning here: rule i applies only where no rule above it fired.
        lines = ["| # | if | then |", "|---:|---|---|"]
        lines += [f"| {i} | {rule.format()} | {rule.head} |"
                  for i, rule in enumerate(rules.rules, 1)]
        lines.append(f"| | otherwise | {rules.default} |")
        return "\n".join(lines)
    lines = ["| class | rule |", "|---|---|"]
    for head in rules.head_names:
        for rule in rules.rules_for(head):
            lines.append(f"| {head} | {rule.format()} |")
    return "\n".join(lines)


def kernels_section(rules: RuleSet) -> str:
    """The legend of the kernels the rules read: label, where it comes from, on-rate.

    Empty when the rules file has no labels.  Labels are escaped as Markdown text (a label
    cannot break the table or become HTML).
    """
    labels = kernel_labels(rules)
    if not labels:
        return ""
    entry = rules.meta.get(LABELS_KEY) or {}
    user = entry.get("user") or {}
    overall = entry.get("overall") or {}
    used = {lit.var for rule in rules.rules for lit in rule.body}
    lines = ["| kernel | label | from | on for (training images) |", "|---|---|---|---:|"]
    for name in rules.variable_names:
        if name not in used or name not in labels:
            continue
        rate = overall.get(name)
        lines.append(f"| {markdown_text(name)} | {markdown_text(labels[name])} | "
                     f"{'user' if name in user else 'auto'} | "
                     f"{'–' if rate is None else f'{rate:.1%}'} |")
    return "\n".join(lines)


def groups_section(rules: RuleSet) -> str:
    """The kernel groups of ``--group-kernels`` (``meta["groups"]``), one row each; empty
    without groups."""
    groups = rules.meta.get("groups")
    members = groups.get("members") if isinstance(groups, Mapping) else None
    if not members:
        return ""
    agree = groups.get("agreement") or {}
    labels = kernel_labels(rules)
    lines = [f"Kernels whose binary codes agree on at least {groups.get('threshold')} of the "
             "training images are one predicate, on iff at least one member is on.", "",
             "| group | members | lowest agreement | label |", "|---|---|---:|---|"]
    for g, ks in members.items():
        lines.append(f"| {markdown_text(g)} | {markdown_text(', '.join(ks))} | "
                     f"{_fmt(agree.get(g))} | {markdown_text(labels.get(g, ''))} |")
    return "\n".join(lines)


def rule_kind_sentence(meta: Mapping) -> str:
    """What the rules promise, in words: exact (the network decides by them), guaranteed
    (worst case) or learned (measured).

    Empty when the rules file does not say (files written before rule kinds existed).
    """
    kind = meta.get("rule_kind")
    if kind == "exact":
        return ("**exact**: the network decides by this program (a tuned network: its "
                "output layer is this list over its kernel bits), so the two agree on "
                "every input")
    if kind == "guaranteed":
        return ("**guaranteed**: each rule implies its class for every input it covers "
                "(worst case over all kernel values)")
    if kind == "learned":
        fidelity = (meta.get("metrics") or {}).get("fidelity")
        share = f" on {fidelity:.1%} of the test images" if isinstance(fidelity, float) else ""
        return (f"**learned**: fitted to the network's decisions; the program agrees with "
                f"the network{share}, with no guarantee elsewhere")
    return ""


def replaces_sentence(meta: Mapping) -> str:
    """Which layers the rules stand for, when more than the output layer (else ``""``).

    From ``meta["rest_of_network"]`` (:mod:`cnn2logic.extract.rest`), e.g. "the rules
    over `layer4` replace avgpool → fc; the rest of the network run on the binarised
    units agrees with the network on 97.1% of the test images".

    Parameters
    ----------
    meta : mapping
        A rules file's meta.

    Returns
    -------
    str
    """
    rest = meta.get("rest_of_network")
    if not isinstance(rest, Mapping) or rest.get("output_reads_units", True):
        return ""
    names = [str(n) for n in rest.get("replaces") or []]
    shown = " → ".join(names if len(names) <= 6 else names[:3] + ["…"] + names[-2:])
    text = f"the rules over `{rest.get('layer', '?')}` replace {shown or 'the layers after it'}"
    calls = rest.get("layer_calls", 1)
    if isinstance(calls, int) and calls > 1:
        text += f" (the layer runs {calls} times per image; its last call is read)"
    on_bits = rest.get("network_on_bits")
    if isinstance(on_bits, Mapping) and isinstance(on_bits.get("fidelity"), float):
        text += (f"; the rest of the network run on the binarised units agrees with the "
                 f"network on {on_bits['fidelity']:.1%} of the test images (accuracy "
                 f"{on_bits.get('accuracy', 0.0):.1%}): what binarisation costs")
    return text


def to_markdown(rules: RuleSet) -> str:
    """The whole readable summary of a rules file."""
    # Deferred on purpose: cnn2logic.model.spec imports torch; the other writers here do not.
    from ..model.spec import PAPER_FIGURES

    meta = rules.meta
    parts = ["# Extracted rules", ""]
    settings = meta.get("settings", {})
    parts.append(f"- model: `{meta.get('model', '')}` ({meta.get('architecture', '?')}), "
                 f"kernel units from layer `{meta.get('layer', '?')}`, rules for "
                 f"`{meta.get('output_layer', '?')}`")
    parts.append(f"- data: `{meta.get('data', '?')}`")
    if settings:
        parts.append("- settings: " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())))
    parts.append(f"- decision: first satisfied rule in rank order; default class "
                 f"`{rules.default}` when none fires")
    kind = rule_kind_sentence(meta)
    if kind:
        parts.append(f"- kind: {kind}")
    if replaces_sentence(meta):  # the output layer does not read the kernel units directly
        parts.append(f"- replaces: {replaces_sentence(meta)}")
    parts.append("")
    if "metrics" in meta:
        parts += ["## Metrics (test set)", "",
                  metrics_table(meta["metrics"], PAPER_FIGURES.get(meta.get("architecture", ""))),
                  ""]
    if "table" in meta:
        parts += ["## One term per class (as the paper's Table 1)", "", table1(meta["table"]), ""]
    title = "The program, in order" if meta.get("ordered") else "All rules"
    parts += [f"## {title} ({len(rules.rules)})", "", rules_section(rules), ""]
    grouped = groups_section(rules)
    if grouped:
        parts += ["## Kernel groups", "", grouped, ""]
    legend = kernels_section(rules)
    if legend:
        parts += ["## The kernels the rules read", "",
                  "Each kernel's label: the user's, or made from its class profile on the "
                  "binarised training images (`auto`: "
                  + markdown_text(str((meta.get(LABELS_KEY) or {}).get("rule", ""))) + ").",
                  "", legend, ""]
    curve = (meta.get("rulelist") or {}).get("curve") if isinstance(meta.get("rulelist"),
                                                                     Mapping) else None
    if curve:
        parts += ["## Fidelity against size (training codes)", "",
                  "How fidelity grows along the list: the first *n* rules with their best "
                  "default. (`--max-rules n` refits the best *n*-rule program.)", "",
                  "| rules | literals | training fidelity |", "|---:|---:|---:|"]
        parts += [f"| {p.get('rules')} | {p.get('literals')} | {p.get('train_fidelity')} |"
                  for p in curve if isinstance(p, Mapping)]
        parts.append("")
    return "\n".join(parts)
