"""Sanitisation: every name becomes a legal, distinct identifier and its text round-trips
through clingo (``clingo.parse_term``) and SWI-Prolog, however hostile the name."""

from __future__ import annotations

import json
import shutil
import subprocess

import clingo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn2logic.names import NameTable, asp_string, comment_safe, identifier, is_identifier, \
    prolog_atom

HOSTILE = ["3", "Conv1", "cat-dog", "Cat_Dog", "cat dog", "it's", 'say "hi"', "back\\slash",
           "end\\", "new\nline", "tab\there", "cr\rlf", "größe", "猫", "🐈", "%*", "*%",
           ":-", "not", "_", "", " ", "c_3", "k_k6", "i_img0", "\x7f", "\x1b[0m", "\u2028",
           "\r", "\r\n", "a\r\nb", "nel\x85", "ls\u2028ps\u2029", "\x0b\x0c"]

# Any text but NUL, which no clingo string can hold (the exporters reject it).
names_st = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                   max_size=12)

needs_swipl = pytest.mark.skipif(shutil.which("swipl") is None,
                                 reason="SWI-Prolog (swipl) is not installed; CI installs "
                                        "Debian's swi-prolog-nox")


def _quiet(_code, _message):
    pass


def test_identifiers_of_hostile_names_are_legal_and_distinct():
    table = NameTable("c", HOSTILE)
    idents = [table[n] for n in HOSTILE]
    assert len(set(idents)) == len(HOSTILE)
    for name, ident in zip(HOSTILE, idents):
        assert is_identifier(ident), ident
        assert table.original(ident) == name
        sym = clingo.parse_term(ident, logger=_quiet)
        assert sym.type == clingo.SymbolType.Function and sym.name == ident
        assert not sym.arguments


def test_readable_identifiers():
    assert identifier("Conv1", "k") == "k_conv1"
    assert identifier("cat-dog", "c") == "c_cat_dog"
    assert identifier("größe", "c") == "c_groe"  # ß has no ASCII decomposition
    assert identifier("猫", "c") == "c"


@given(st.lists(names_st, max_size=20))
@settings(max_examples=200, deadline=None)
def test_name_table_is_injective_and_deterministic(names):
    a, b = NameTable("k", names), NameTable("k", names)
    assert a.items() == b.items()
    idents = {a[n] for n in names}
    assert len(idents) == len(set(names))
    assert all(is_identifier(i) for i in idents)


@given(names_st)
@settings(max_examples=300, deadline=None)
def test_asp_string_round_trips_through_clingo(name):
    sym = clingo.parse_term(asp_string(name), logger=_quiet)
    assert sym.type == clingo.SymbolType.String
    assert sym.string == name


def test_asp_strings_of_hostile_names_round_trip():
    for name in HOSTILE:
        assert clingo.parse_term(asp_string(name), logger=_quiet).string == name


def test_comment_safe_is_one_line():
    assert "\n" not in comment_safe("a\nb\r\nc") and "\r" not in comment_safe("a\rb")


def _swipl_round_trip(names: list[str], tmp_path) -> list[str]:
    program = tmp_path / "names.pl"
    body = "".join(f"n({i}, {prolog_atom(n)}).\n" for i, n in enumerate(names))
    program.write_text(":- encoding(utf8).\n" + body, encoding="utf-8")
    goal = ("forall(n(I, A), (atom_codes(A, C), format('~w~n', [C]))), halt")
    proc = subprocess.run(["swipl", "--on-warning=status", "-q", "-g", goal, "-t", "halt(1)",
                           str(program)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return ["".join(map(chr, json.loads(line))) for line in proc.stdout.splitlines()]


@needs_swipl
def test_prolog_atoms_of_hostile_names_round_trip(tmp_path):
    assert _swipl_round_trip(HOSTILE, tmp_path) == HOSTILE


@needs_swipl
@given(st.lists(names_st, min_size=1, max_size=40))
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_prolog_atom_round_trips_through_swipl(tmp_path, names):
    assert _swipl_round_trip(names, tmp_path) == names


@needs_swipl
def test_identifiers_are_plain_prolog_atoms(tmp_path):
    table = NameTable("c", HOSTILE)
    idents = [table[n] for n in HOSTILE]
    program = tmp_path / "idents.pl"
    program.write_text("".join(f"i({ident}).\n" for ident in idents), encoding="utf-8")
    goal = "forall(i(A), (atom(A), format('~w~n', [A]))), halt"
    proc = subprocess.run(["swipl", "--on-warning=status", "-q", "-g", goal, "-t", "halt(1)",
                           str(program)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert proc.stdout.splitlines() == idents
