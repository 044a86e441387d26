"""Kernel-relation graphs: relations, node/edge counts, GraphML/DOT/PNG files."""

from __future__ import annotations

from itertools import combinations

import networkx as nx
import pytest

from cnn2logic import visual as G
from cnn2logic.cli import main
from cnn2logic.errors import RulesFileError, VisualizationError
from cnn2logic.names import is_identifier
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable, save_rules

# The paper's Table 1 (paper1): class -> literals (negative number = negated kernel).
TABLE1 = {0: "9 -1 -2 -3 -5 -6 -7 -8", 1: "2 3 4 6 -1 -7 -8", 2: "1 -2 -4 -6 -7 -8 -9",
          3: "6 8 -1 -2 -3 -7 -10", 4: "2 7 8 9 -4 -5 -10", 5: "4 9 -1 -2 -6 -7",
          6: "10 -1 -2 -3 -4 -6 -8 -9", 7: "1 5 6 9 -2 -4 -8", 8: "4 8 -2 -3 -6 -7 -9 -10",
          9: "1 6 7 8 9 -3 -4 -5"}


def _table1(extra: tuple[Rule, ...] = ()) -> RuleSet:
    rules = tuple(
        Rule(str(c), tuple(Literal(f"k{abs(int(t))}", int(t) > 0) for t in s.split()))
        for c, s in TABLE1.items()) + extra
    return RuleSet(tuple(Variable(f"k{i}", "pool", i - 1) for i in range(1, 11)),
                   tuple(Head(str(c), "class", "out", c) for c in range(10)), rules,
                   default="1")


@pytest.fixture
def vis_table1():
    # A second rule for class 3 (k1 positive there, negated in the first: mixed polarity).
    return _table1((Rule("3", (Literal("k1"), Literal("k6"))),))


def _brute_force(rules: RuleSet):
    """The relations by the definitions, written independently of cnn2logic.visual."""
    lits = {}
    for r in rules.rules:
        for lit in r.body:
            lits.setdefault((lit.var, r.head), set()).add(lit.positive)
    co = {}
    for r in rules.rules:
        pos = [lit.var for lit in r.body if lit.positive]
        for a, b in combinations(pos, 2):
            key = tuple(sorted((a, b), key=lambda v: int(v[1:])))
            co[key] = co.get(key, 0) + 1
    opposite = {key for key, pols in lits.items() if len(pols) == 2}
    positive = sorted({lit.var for r in rules.rules for lit in r.body if lit.positive},
                      key=lambda v: int(v[1:]))
    exclusive = {p for p in combinations(positive, 2) if p not in co}
    return lits, co, opposite, exclusive


def test_relations_match_their_definitions(vis_table1):
    lits, co, opposite, exclusive = _brute_force(vis_table1)
    uses = G.literal_uses(vis_table1)
    assert set(uses) == set(lits)
    for key, pols in lits.items():
        sign = 0 if len(pols) == 2 else (1 if True in pols else -1)
        assert uses[key]["sign"] == sign, key
    assert uses[("k1", "3")]["polarity"] == "mixed"
    assert uses[("k1", "3")]["terms"] == 2 and uses[("k6", "3")]["terms"] == 2
    assert uses[("k8", "3")]["share"] == 0.5 and uses[("k6", "3")]["weight"] == 1.0
    assert G.cooccurrence(vis_table1) == co
    assert G.opposite_polarity(vis_table1) == {("k1", "3"): {"positive": 1, "negative": 1}}
    assert opposite == {("k1", "3")}
    assert set(G.never_together(vis_table1)) == exclusive
    conf = G.conflicts(vis_table1)
    assert set(conf["never_together"]) == exclusive
    assert conf["opposite_polarity"] == G.opposite_polarity(vis_table1)
    assert not exclusive & set(co)  # the two kernel-pair relations are disjoint
    # Table 1: k6 and k8 appear together positively for class 3 and for class 9.
    assert co[("k6", "k8")] == 2


def test_graph_counts_and_attributes(vis_table1):
    lits, co, opposite, exclusive = _brute_force(vis_table1)
    g = G.kernel_graph(vis_table1, images={"k6": "vis/k6.png"})
    assert isinstance(g, nx.DiGraph)
    assert g.number_of_nodes() == 10 + 10
    assert g.number_of_edges() == len(lits) + len(co) + len(exclusive)
    k6 = g.nodes["k_k6"]
    assert (k6["kind"], k6["layer"], k6["index"], k6["label"], k6["image"]) == \
        ("kernel", "pool", 5, "k6", "vis/k6.png")
    assert g.nodes["k_k1"]["image"] == ""
    assert g.nodes["c_1"]["default"] is True and g.nodes["c_3"]["kind"] == "class"
    e = g.edges["k_k9", "c_0"]
    assert (e["relation"], e["sign"], e["polarity"], e["weight"]) == \
        ("literal", 1, "positive", 1.0)
    assert g.edges["k_k1", "c_0"]["sign"] == -1
    pair = g.edges["k_k6", "k_k8"]
    assert pair["relation"] == "cooccurrence" and pair["cooccurrence"] == 2
    assert pair["directed"] is False
    assert g.edges["k_k1", "c_3"]["conflict"] == "opposite_polarity"
    assert g.edges["k_k1", "c_3"]["sign"] == 0 and g.edges["k_k6", "c_3"]["conflict"] == ""
    a, b = sorted(exclusive)[0]
    assert g.edges[f"k_{a}", f"k_{b}"]["conflict"] == "never_together"
    conflict_edges = [e for e in g.edges(data=True) if e[2].get("conflict")]
    assert len(conflict_edges) == len(exclusive) + len(opposite)
    only = G.kernel_graph(vis_table1, relations=["literal"])
    assert only.number_of_edges() == len(lits)
    assert {d["relation"] for *_, d in only.edges(data=True)} == {"literal"}
    with pytest.raises(VisualizationError, match="unknown relation"):
        G.kernel_graph(vis_table1, relations=["friendship"])
    with pytest.raises(RulesFileError):
        G.kernel_graph("not rules")  # type: ignore[arg-type]


def test_weights_follow_rule_support():
    rs = RuleSet((Variable("a"), Variable("b")), (Head("x"),),
                 (Rule("x", (Literal("a"),), stats={"support": 30}),
                  Rule("x", (Literal("b"), Literal("a", False)), stats={"support": 10})))
    uses = G.literal_uses(rs)
    assert uses[("a", "x")]["coverage_share"] == 1.0 and uses[("a", "x")]["sign"] == 0
    assert uses[("b", "x")]["weight"] == 0.25 and uses[("b", "x")]["share"] == 0.5


def test_multi_layer_dependencies_and_layers():
    variables = (Variable("conv2.k1", "conv2", 0), Variable("conv2.k2", "conv2", 1),
                 Variable("conv2.k3", "conv2", 2), Variable("pool.k1", "pool", 0),
                 Variable("pool.k2", "pool", 1))
    heads = (Head("pool.k1", "kernel", "pool", 0), Head("pool.k2", "kernel", "pool", 1),
             Head("0"), Head("1"))
    rules = (Rule("pool.k1", (Literal("conv2.k1"), Literal("conv2.k2", False))),
             Rule("pool.k2", (Literal("conv2.k2"), Literal("conv2.k3"))),
             Rule("pool.k2", (Literal("conv2.k3"), Literal("conv2.k1"))),
             Rule("0", (Literal("pool.k1"), Literal("pool.k2", False))),
             Rule("1", (Literal("pool.k2"),)))
    rs = RuleSet(variables, heads, rules, default="1")
    deps = G.dependencies(rs)
    assert set(deps) == {("conv2.k1", "pool.k1"), ("conv2.k2", "pool.k1"),
                         ("conv2.k2", "pool.k2"), ("conv2.k3", "pool.k2"),
                         ("conv2.k1", "pool.k2")}
    assert deps[("conv2.k3", "pool.k2")]["terms"] == 2
    assert deps[("conv2.k2", "pool.k1")]["sign"] == -1
    # Class relations use only class rules: conv2 kernels never co-occur "for a class".
    assert G.cooccurrence(rs) == {}
    g = G.kernel_graph(rs)
    assert g.number_of_nodes() == 5 + 2  # kernel heads are the pool variables' nodes
    assert [g.nodes[n]["rank"] for n in g] == [0, 0, 0, 1, 1, 2, 2]
    dep_edges = [(u, v) for u, v, d in g.edges(data=True) if "dependency" in d["relation"]]
    assert len(dep_edges) == 5
    assert g.edges["k_conv2_k1", "k_pool_k1"]["sign"] == 1
    lit_edges = [e for e in g.edges(data=True) if e[2]["relation"] == "literal"]
    assert len(lit_edges) == 3
    # pool.k1 and pool.k2 are both positive in class rules but never in the same one.
    assert g.edges["k_pool_k1", "k_pool_k2"]["conflict"] == "never_together"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's use of pyparsing
def test_files_round_trip_and_are_byte_identical(tmp_path, vis_table1):
    pydot = pytest.importorskip("pydot")
    g = G.kernel_graph(vis_table1)
    a = G.write_graph(g, tmp_path / "a", title="t")
    b = G.write_graph(G.kernel_graph(vis_table1), tmp_path / "b", title="t")
    for fmt in ("graphml", "dot", "png"):
        assert a[fmt].read_bytes() == b[fmt].read_bytes(), fmt
    back = G.read_graph(a["graphml"])
    assert list(back.nodes) == list(g.nodes)
    assert set(back.edges) == set(g.edges)
    for n in g:
        assert back.nodes[n] == g.nodes[n]
    for e in g.edges:
        assert back.edges[e] == g.edges[e]
    (dot,) = pydot.graph_from_dot_file(str(a["dot"]))
    dot_nodes = {n.get_name() for n in dot.get_nodes()} - {"node", "edge", "graph"}
    assert dot_nodes == set(g.nodes)
    assert len(dot.get_edges()) == g.number_of_edges()
    edge = next(e for e in dot.get_edges()
                if (e.get_source(), e.get_destination()) == ("k_k9", "c_0"))
    assert edge.get("relation") == '"literal"' and edge.get("sign") == "1"
    from PIL import Image

    with Image.open(a["png"]) as im:
        assert im.format == "PNG" and im.width > 600 and im.height > 300
    assert not list(tmp_path.glob("**/*.tmp"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_odd_names_get_safe_ids_and_keep_labels(tmp_path):
    pydot = pytest.importorskip("pydot")
    names = ["Conv 1/k#1", "größe", "3", 'say "hi"\\']
    rs = RuleSet(tuple(Variable(n, "L", i) for i, n in enumerate(names)),
                 (Head("cat-dog"), Head("Cat_Dog"), Head("π")),
                 (Rule("cat-dog", (Literal(names[0]), Literal(names[1]))),
                  Rule("Cat_Dog", (Literal(names[2], False), Literal(names[3]))),
                  Rule("π", (Literal(names[1]),))))
    g = G.kernel_graph(rs)
    assert all(is_identifier(n) for n in g)
    assert len(set(g.nodes)) == 7
    assert sorted(g.nodes[n]["label"] for n in g) == sorted(names + ["cat-dog", "Cat_Dog", "π"])
    paths = G.write_graph(g, tmp_path, "odd")
    back = nx.read_graphml(paths["graphml"])
    assert {back.nodes[n]["label"] for n in back} == {g.nodes[n]["label"] for n in g}
    (dot,) = pydot.graph_from_dot_file(str(paths["dot"]))
    assert len(dot.get_edges()) == g.number_of_edges()
    with pytest.raises(VisualizationError, match="unsafe"):
        G.write_graph(g, tmp_path, "../escape")
    bad = nx.DiGraph()
    bad.add_node("not an id")
    with pytest.raises(VisualizationError, match="NameTable"):
        G.graphml_text(bad)


def test_edge_cases():
    rs = RuleSet((Variable("k1"),), (Head("a"), Head("b")), ())
    g = G.kernel_graph(rs)
    assert g.number_of_nodes() == 3 and g.number_of_edges() == 0
    assert G.graph_png(g)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(VisualizationError, match="no nodes"):
        G.graph_png(nx.DiGraph())
    assert G.graph_png(G.kernel_graph(_table1()), conflicts=True)[:4] == b"\x89PNG"
    with pytest.raises(VisualizationError, match="no per-class table"):
        G.table_ruleset(rs)


def test_table_ruleset(vis_table1):
    meta = {"table": [{"class": "3", "body": [["k6", True], ["k8", True], ["k1", False]],
                       "test_support": 12},
                      {"class": "0", "body": None}]}
    t = G.table_ruleset(vis_table1.replace(meta=meta))
    assert [str(r) for r in t.rules] == ["3 ← k6 ∧ k8 ∧ ¬k1"]
    assert t.rules[0].stats == {"support": 12}
    with pytest.raises(VisualizationError, match="unknown class"):
        G.table_ruleset(vis_table1.replace(meta={"table": [{"class": "x", "body": [["k1", 1]]}]}))


def test_cli_graph(tmp_path, capsys, vis_table1):
    from cnn2logic.cli.graph import RELATIONS

    assert RELATIONS == G.RELATIONS  # the CLI keeps a copy to avoid importing networkx
    rules_path = tmp_path / "rules.json"
    save_rules(vis_table1, rules_path)
    rc = main(["graph", str(rules_path), "--out", str(tmp_path / "g"), "--draw-conflicts"])
    out = capsys.readouterr().out
    assert rc == 0
    g = G.kernel_graph(vis_table1)
    assert f"{g.number_of_nodes()} nodes, {g.number_of_edges()} edges" in out
    for ext in ("graphml", "dot", "png"):
        assert (tmp_path / "g" / f"kernels.{ext}").is_file()
    rc = main(["graph", str(rules_path), "--out", str(tmp_path / "g"), "--no-png",
               "--name", "lit", "--relations", "literal"])
    assert rc == 0 and not (tmp_path / "g" / "lit.png").exists()
    # Table 1 has 73 literals.
    assert G.read_graph(tmp_path / "g" / "lit.graphml").number_of_edges() == 73
    rc = main(["graph", str(rules_path), "--out", str(tmp_path / "g"), "--terms", "table"])
    assert rc == 2 and "no per-class table" in capsys.readouterr().err
    rc = main(["graph", str(tmp_path / "none.json"), "--out", str(tmp_path / "g")])
    assert rc == 2 and "rules file not found" in capsys.readouterr().err


def _asp_agrees(rules: RuleSet) -> tuple[set, set]:
    pytest.importorskip("clingo")
    query = pytest.importorskip("cnn2logic.query")
    result = query.conflicts(query.Program.from_rules(rules), limit=1)
    g = G.kernel_graph(rules)
    label = {n: g.nodes[n]["name"] for n in g}
    never = {(label[u], label[v]) for u, v, d in g.edges(data=True)
             if d.get("conflict") == "never_together"}
    assert never == {tuple(p) for p in result.never_together}
    assert len(never) == len(result.never_together)
    opposite = {(label[v], label[u], d["pos_terms"], d["neg_terms"])
                for u, v, d in g.edges(data=True) if d.get("conflict") == "opposite_polarity"}
    assert opposite == {(o["class"], o["kernel"], o["positive"], o["negative"])
                        for o in result.opposite_polarity}
    return never, opposite


def test_conflicts_agree_with_the_asp_query(vis_table1):
    """The graph's conflict edges are exactly what ``cnn2logic query conflicts`` finds."""
    never, opposite = _asp_agrees(vis_table1)
    assert len(never) > 0 and opposite == {("3", "k1", 1, 1)}


def test_conflicts_agree_with_the_asp_query_on_extracted_rules(core_paper1_extraction):
    never, opposite = _asp_agrees(core_paper1_extraction.rules)
    assert len(opposite) > 0  # hundreds of terms: kernels take both polarities


def test_dependencies_of_a_chained_extraction():
    """The multi-layer extractor's program: kernel -> kernel edges are its kernel rules."""
    import numpy as np

    chaining = pytest.importorskip("cnn2logic.extract.chaining")
    rng = np.random.default_rng(0)
    x0 = rng.random((500, 3)) < 0.5
    x1 = np.stack([x0[:, 0] & x0[:, 1], ~x0[:, 2]], axis=1)
    y = (x1[:, 0] | x1[:, 1]).astype(int)
    layers = [chaining.ChainLayer("a", x0, tuple(Variable(f"a.k{j + 1}", "a", j)
                                                 for j in range(3))),
              chaining.ChainLayer("b", x1, tuple(Variable(f"b.k{j + 1}", "b", j)
                                                 for j in range(2)))]
    program = chaining.ChainingExtractor(learner="tree").fit(layers, y).program_
    kinds = {h.name: h.kind for h in program.heads}
    want = {(lit.var, r.head) for r in program.rules if kinds[r.head] == "kernel"
            for lit in r.body}
    g = G.kernel_graph(program)
    label = {n: g.nodes[n]["name"] for n in g}
    got = {(label[u], label[v]) for u, v, d in g.edges(data=True)
           if d["relation"] == "dependency"}
    assert got == want and len(want) >= 2
    assert {g.nodes[n]["rank"] for n in g if g.nodes[n]["layer"] == "a"} == {0}
    assert {g.nodes[n]["rank"] for n in g if g.nodes[n]["layer"] == "b"} == {1}
    assert {g.nodes[n]["rank"] for n in g if g.nodes[n]["kind"] == "class"} == {2}
