"""bench/queries.py runs end to end on a tiny synthetic rule base (the real figures are in
the README)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "queries.py"


def test_bench_on_a_tiny_synthetic_base():
    spec = importlib.util.spec_from_file_location("lp_bench_queries", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rules, codes = bench.synthetic(n_kernels=16, n_classes=6, n_images=30, seed=1)
    assert len(rules.rules) == 18 and len(codes) == 30
    # Each image was built to satisfy one rule, so some rule fires on every image.
    assert rules.rule_matrix(codes.bits).any(axis=1).all()
    out = bench.bench("synthetic", rules, codes, 1, "class3", "class4", codes.ids[0])
    assert out["predictions_agree_with_python"]
    assert set(out["query_seconds"]) == {"implies --class class3", "conflicts",
                                         "necessary --class class3", "explain --image img0",
                                         "flip --image img0 --to class4"}
    assert all(v >= 0 for v in out["query_cpu_seconds"].values())
