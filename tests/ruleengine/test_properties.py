# SPDX-License-Identifier: Apache-2.0
"""Property tests: the parser and the loader never crash; bad input only ever yields located errors."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ruleengine.condition.parser import ConditionSyntaxError, parse_condition
from ruleengine.engine import load_texts

TOKENS = st.sampled_from(
    [
        "proc.name",
        "fd.name",
        "evt.type",
        "proc.aname[2]",
        "fd.num",
        "fd.sip",
        "fd.snet",
        "evt.is_open_read",
        "proc.nosuch",
        "m1",
        "m2",
        "shells",
        "and",
        "or",
        "not",
        "not(",
        "(",
        ")",
        ",",
        "=",
        "!=",
        "<",
        ">=",
        "in",
        "pmatch",
        "intersects",
        "contains",
        "icontains",
        "startswith",
        "endswith",
        "glob",
        "regex",
        "exists",
        "bcontains",
        "anyof",
        "oneof",
        "tolower(",
        "len(",
        "val(",
        "'a b'",
        '"x\\"y"',
        "'\\x41'",
        "/etc",
        "3",
        "0x1f",
        "-2",
        "true",
        "10.0.0.0/8",
        "open",
        "openat",
        "[",
        "]",
        "\\",
        "'",
        '"',
        "*",
        "<NA>",
    ]
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.text(max_size=200))
def test_parser_random_text(text: str) -> None:
    try:
        parse_condition(text)
    except ConditionSyntaxError as exc:
        assert 0 <= exc.pos <= len(text)
        assert exc.message


@SETTINGS
@given(st.lists(TOKENS, max_size=25), st.lists(st.sampled_from([" ", "", "  ", "\n"]), min_size=25, max_size=25))
def test_parser_token_soup(tokens: list[str], seps: list[str]) -> None:
    text = "".join(t + s for t, s in zip(tokens, seps, strict=False))
    try:
        parse_condition(text)
    except ConditionSyntaxError as exc:
        assert 0 <= exc.pos <= len(text)


def _rules_file(conds: list[str], with_list: bool) -> str:
    items = []
    if with_list:
        items.append({"list": "shells", "items": ["sh", "bash", "a b"]})
    items.append({"macro": "m1", "condition": conds[0]})
    items.append({"macro": "m2", "condition": "m1 or " + conds[1 % len(conds)]})
    for i, c in enumerate(conds):
        items.append({"rule": f"r{i}", "desc": "d", "condition": c, "output": "o %proc.name", "priority": "INFO"})
    return yaml.safe_dump(items)


@SETTINGS
@given(st.lists(st.lists(TOKENS, min_size=1, max_size=12).map(" ".join), min_size=1, max_size=4), st.booleans())
def test_loader_random_conditions_give_located_errors(conds: list[str], with_list: bool) -> None:
    res = load_texts([("f.yaml", _rules_file(conds, with_list))])
    for m in res.errors + res.warnings:
        assert m.location.file == "f.yaml" and m.location.line >= 1 and m.message
    if res.errors:
        assert res.engine is None
    else:
        assert res.engine is not None


YAML_SCALARS = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.booleans(),
    st.none(),
    st.sampled_from(["rule", "macro", "list", "condition", "items", "override", "append", "exceptions", "=", "in"]),
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "rule",
                    "macro",
                    "list",
                    "condition",
                    "items",
                    "desc",
                    "output",
                    "priority",
                    "override",
                    "append",
                    "exceptions",
                    "name",
                    "fields",
                    "comps",
                    "values",
                    "enabled",
                    "tags",
                    "source",
                    "required_engine_version",
                    "required_plugin_versions",
                    "version",
                ]
            ),
            inner,
            max_size=6,
        ),
    ),
    max_leaves=25,
)


@SETTINGS
@given(st.lists(YAML_VALUES, max_size=6))
def test_loader_random_structures_never_crash(doc: list[object]) -> None:
    text = yaml.safe_dump(doc)
    res = load_texts([("g.yaml", text)])
    for m in res.errors + res.warnings:
        assert m.location.file == "g.yaml" and m.message


@SETTINGS
@given(st.text(max_size=300))
def test_loader_random_text_never_crashes(text: str) -> None:
    res = load_texts([("h.yaml", text)])
    for m in res.errors + res.warnings:
        assert m.location.file == "h.yaml" and m.message


# --- compiled evaluation: the per-type dispatchers agree with rule-by-rule evaluation -------------------------
ATOMS = st.sampled_from(
    [
        "proc.name = cat",
        "proc.name in (cat, bash, sh)",
        "proc.name startswith ba",
        "proc.name endswith sh",
        "proc.name contains a",
        "proc.name icontains A",
        "proc.name glob 'b*'",
        "proc.name pmatch (/x)",
        "fd.name startswith /etc",
        "fd.name pmatch (/etc, /tmp)",
        "fd.name contains shadow",
        "fd.name exists",
        "fd.num >= 3",
        "fd.num = 3",
        "fd.num != 4",
        "fd.sip = 10.0.0.1",
        "fd.snet = 10.0.0.0/8",
        "proc.aname = sshd",
        "proc.aname[2] = sshd",
        "evt.type = openat",
        "evt.type in (openat, execve)",
        "evt.type != connect",
        "proc.name = val(proc.pname)",
        "len(proc.name) > 2",
        "tolower(proc.name) = cat",
        "proc.cmdline contains anyof (x, y, shadow)",
        "proc.name startswith anyof (ca, ba)",
        "m1",
        "m2",
    ]
)
COND = st.recursive(
    ATOMS,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]} and {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} or {t[1]})"),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=8,
)

EVAL_EVENTS = [
    {
        "evt.type": "openat",
        "proc.name": "cat",
        "fd.name": "/etc/shadow",
        "fd.num": 3,
        "proc.pname": "bash",
        "proc.aname[2]": "sshd",
    },
    {"evt.type": "execve", "proc.name": "bash", "proc.pname": "bash", "proc.cmdline": "bash -c x"},
    {
        "evt.type": "connect",
        "proc.name": "sh",
        "fd.sip": "10.0.0.1",
        "fd.sport": 80,
        "fd.cip": "10.0.0.2",
        "fd.cport": 5000,
        "fd.l4proto": "tcp",
        "fd.num": 4,
    },
    {"evt.type": "close", "proc.name": "x"},
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COND, min_size=1, max_size=5), st.sampled_from(["first", "all"]))
def test_dispatch_matches_rule_by_rule(conds: list[str], matching: str) -> None:
    from ruleengine.engine import EngineOptions
    from ruleengine.events_json import event_from_fields
    from ruleengine.fields import EventContext

    items: list[dict[str, object]] = [
        {"macro": "m1", "condition": "proc.name in (cat, sh) and fd.num exists"},
        {"macro": "m2", "condition": "m1 or fd.name startswith /tmp"},
    ]
    for i, c in enumerate(conds):
        items.append(
            {"rule": f"r{i}", "desc": "d", "condition": c, "output": "o", "priority": "INFO", "warn_evttypes": False}
        )
    res = load_texts([("p.yaml", yaml.safe_dump(items))], EngineOptions(rule_matching=matching))
    assert res.engine is not None, [e.format() for e in res.errors]
    for i, rec in enumerate(EVAL_EVENTS):
        ev = event_from_fields(rec, num=i + 1)
        got = [m.name for m in res.engine.process(EventContext(ev))]
        want: list[str] = []
        ref = EventContext(ev)
        for rule in res.engine.candidates(ev.source, ev.type):
            if rule.fn(ref.get):
                want.append(rule.name)
                if matching == "first":
                    break
        assert got == want, (rec, conds)


def _oracle(e: object, ctx: object, macros: dict[str, object]) -> bool:
    """A deliberately naive interpreter of the resolved tree, independent of the code generator."""
    import fnmatch as fn

    from ruleengine.condition.ast import And, Check, FieldRef, ListValue, MacroRef, Not, Or, Transformer
    from ruleengine.fields import resolve_field

    if isinstance(e, And):
        return all(_oracle(c, ctx, macros) for c in e.children)
    if isinstance(e, Or):
        return any(_oracle(c, ctx, macros) for c in e.children)
    if isinstance(e, Not):
        return not _oracle(e.child, ctx, macros)
    if isinstance(e, MacroRef):
        return _oracle(macros[e.name], ctx, macros)
    assert isinstance(e, Check)

    def value_of(node: object) -> tuple[object, object]:
        if isinstance(node, FieldRef):
            bf = resolve_field("syscall", node.name, node.arg)
            return ctx.get(bf), bf  # type: ignore[attr-defined]
        assert isinstance(node, Transformer)
        inner, bf = value_of(node.args[0])
        if inner is None:
            return None, None
        if node.name == "val":
            return inner, bf
        if node.name == "len":
            return len(inner), None  # type: ignore[arg-type]
        return inner.lower(), None  # type: ignore[attr-defined]  # tolower is the only other one used

    v, bf = value_of(e.lhs)
    if e.op == "exists":
        return v is not None and v != ()
    if v is None or v == ():
        return False
    values = list(v) if isinstance(v, tuple) else [v]
    if isinstance(e.value, Transformer):
        w, _ = value_of(e.value)
        return w is not None and any(x == w for x in values)
    texts = list(e.value.items) if isinstance(e.value, ListValue) else [e.value.text]  # type: ignore[union-attr]
    lits = [bf.parse_literal(t) if bf is not None else (int(t) if isinstance(v, int) else t) for t in texts]

    def one(x: object, k: object) -> bool:
        op = e.op
        if op in ("=", "==", "in", "intersects"):
            return x in k if hasattr(k, "network_address") else x == k  # type: ignore[operator]
        if op == "!=":
            return x != k
        if op in ("<", "<=", ">", ">="):
            return {"<": x < k, "<=": x <= k, ">": x > k, ">=": x >= k}[op]  # type: ignore[operator]
        if op == "contains":
            return k in x  # type: ignore[operator]
        if op == "icontains":
            return str(k).lower() in str(x).lower()
        if op == "startswith":
            return str(x).startswith(str(k))
        if op == "endswith":
            return str(x).endswith(str(k))
        if op == "glob":
            return fn.fnmatchcase(str(x), str(k))
        if op == "pmatch":
            xs, ks = [c for c in str(x).split("/") if c], [c for c in str(k).split("/") if c]
            return xs[: len(ks)] == ks
        raise AssertionError(op)

    if e.modifier == "anyof" or e.op in ("in", "intersects", "pmatch"):
        return any(one(x, k) for x in values for k in lits)
    return any(one(x, lits[0]) for x in values)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COND, min_size=1, max_size=4))
def test_engine_agrees_with_a_naive_interpreter(conds: list[str]) -> None:
    from ruleengine.engine import EngineOptions
    from ruleengine.events_json import event_from_fields
    from ruleengine.fields import EventContext

    macros_src = {"m1": "proc.name in (cat, sh) and fd.num exists", "m2": "m1 or fd.name startswith /tmp"}
    items: list[dict[str, object]] = [{"macro": k, "condition": v} for k, v in macros_src.items()]
    for i, c in enumerate(conds):
        items.append(
            {"rule": f"r{i}", "desc": "d", "condition": c, "output": "o", "priority": "INFO", "warn_evttypes": False}
        )
    res = load_texts([("o.yaml", yaml.safe_dump(items))], EngineOptions(rule_matching="all"))
    assert res.engine is not None
    macros = {k: parse_condition(v) for k, v in macros_src.items()}
    for i, rec in enumerate(EVAL_EVENTS):
        ev = event_from_fields(rec, num=i + 1)
        got = [m.name for m in res.engine.process(EventContext(ev))]
        want = [f"r{j}" for j, c in enumerate(conds) if _oracle(parse_condition(c), EventContext(ev), macros)]
        assert got == want, (rec, conds)
