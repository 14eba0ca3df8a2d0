"""Fuzzing the loader: whatever goes in, the only exception that comes out is ProfileError."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimsim.errors import ProfileError
from cimsim.profiles import DeviceProfile, list_profiles, load_profile, profile_from_dict, profile_from_yaml
from cimsim.profiles.loader import MODELS_DIR, _display, profile_path

FIELDS = frozenset(DeviceProfile.model_fields)
# one path segment: a plain key, or a key quoted as Python quotes it ('...' or "...")
SEG = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s:'".\[\]]+)"""
PATH = rf"{SEG}(?:\.{SEG}|\[\d+\])*"
WHERE = rf"\(top level\)|override {PATH}|{PATH}"
STRUCTURAL = (": unknown key", ": nested deeper than", ": a mapping or list contains itself", ": holds more than")

SHIPPED: dict[str, dict[str, Any]] = {
    n: yaml.safe_load((MODELS_DIR / f"{n}.yaml").read_text(encoding="utf-8")) for n in list_profiles()
}
NAMES = sorted(SHIPPED)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, 0, 1, -1, 17]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]),
    st.text(max_size=12),
    st.sampled_from(["none", "power_law", "function", "polynomial", "fixed", "dynamic", "1e-3", ".nan", "yes"]),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(["kind", "bits", "coeffs", "min"])), children, max_size=4),
    ),
    max_leaves=12,
)


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, (*prefix, i))
    return out


def _parent(d: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        d = d[p]
    return d


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(SHIPPED[draw(st.sampled_from(NAMES))])
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        op = draw(st.sampled_from(["replace", "delete", "add", "nest", "kind"]))
        if op == "replace":
            parent[path[-1]] = draw(junk)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(junk)
        elif op == "nest":
            value: Any = parent[path[-1]]
            for _ in range(draw(st.integers(1, 200))):
                value = [value] if draw(st.booleans()) else {"k": value}
            parent[path[-1]] = value
        elif op == "kind" and isinstance(parent, dict):
            parent["kind"] = draw(st.sampled_from(["none", "constant", "table", "piecewise", "one_over_f", "x"]))
    return data


def _names_file_and_field(message: str, source: str) -> None:
    """Every line of a ProfileError names the source and the field:
    ``SOURCE[ (with overrides)]: FIELD: problem`` where FIELD is a dotted path from a profile field,
    ``(top level)``, an unknown key the line calls one, ``extends`` or ``override PATH``; or, for
    text that is not YAML, ``SOURCE:LINE:COLUMN: YAML ...``.  The last line points to the docs."""
    lines = message.splitlines()
    assert lines, message
    if lines[-1].startswith("(every field"):
        lines = lines[:-1]
    head = re.escape(source) + r"(?: \(with overrides\))?"
    for line in lines:
        if re.match(rf"{head}:\d+:\d+: YAML (?:syntax )?error: \S", line):
            continue
        m = re.match(rf"{head}: (?P<where>{WHERE}): \S", line)
        assert m, f"does not start with {source}: FIELD: {line!r}"
        where = m.group("where")
        root = re.match(SEG, where.removeprefix("override ")).group(0)
        # a path from a key that is no profile field is fine where the line says so, or where the
        # structure check (which runs before the schema) names the key the user wrote
        assert (where == "(top level)" or where.startswith("override ") or root in FIELDS or root == "extends"
                or any(w in line for w in STRUCTURAL)), f"{where!r} is not a profile field: {line!r}"


def _only_profile_errors(fn: Any, *args: Any, named: str | None = None, **kwargs: Any) -> None:
    """Call ``fn``: it validates (and round-trips) or raises a ProfileError; with ``named``, every
    line of that error names ``named`` (the source) and the field."""
    named = kwargs.get("source", named)
    try:
        result = fn(*args, **kwargs)
    except ProfileError as exc:
        assert str(exc).strip()
        if named is not None:
            _names_file_and_field(str(exc), named)
        return
    assert isinstance(result, DeviceProfile)
    assert profile_from_yaml(result.to_yaml()) == result  # whatever validates also round-trips


def _source_of(name: str) -> str:
    """How messages name the file of shipped profile ``name`` (relative to the working directory)."""
    return _display(profile_path(name))


@FUZZ
@given(mutated())
def test_mutated_dicts_raise_only_profile_error(data: dict[str, Any]) -> None:
    _only_profile_errors(profile_from_dict, data, source="fuzz.yaml")


@FUZZ
@given(mutated())
def test_mutated_yaml_text_raises_only_profile_error(data: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        return
    _only_profile_errors(profile_from_yaml, text, source="fuzz.yaml")


UNSAFE = [
    "!!python/object/apply:os.system ['echo x']",
    "!!python/name:os.system",
    "!!python/object:builtins.object {}",
    "!!python/module:os",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!timestamp 2001-12-14",
    "&a [*a]",
    "*undefined",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{",
    "'unterminated",
    "? [a, b]\n  : 1",
]


@FUZZ
@given(st.sampled_from(NAMES), st.integers(0, 10_000), st.one_of(st.sampled_from(UNSAFE), st.text(max_size=20)))
def test_corrupted_yaml_text_raises_only_profile_error(name: str, pos: int, insert: str) -> None:
    text = (MODELS_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    pos %= len(text) + 1
    _only_profile_errors(profile_from_yaml, text[:pos] + insert + text[pos:], source="fuzz.yaml")


@FUZZ
@given(st.sampled_from(NAMES), st.sampled_from(UNSAFE))
def test_unsafe_value_in_every_section(name: str, value: str) -> None:
    for section in ("conductance", "drift", "adc", "assumptions", "name"):
        data = yaml.safe_dump({k: v for k, v in SHIPPED[name].items() if k != section}, sort_keys=False)
        _only_profile_errors(profile_from_yaml, f"{data}{section}: {value}\n", source="fuzz.yaml")


dotted = st.lists(
    st.one_of(st.sampled_from(["adc", "bits", "drift", "nu", "mean", "kind", "tile", "rows", "range", "coeffs", ""]),
              st.text(max_size=6)),
    min_size=1, max_size=4,
).map(".".join)


@FUZZ
@given(st.sampled_from(NAMES), st.dictionaries(st.one_of(dotted, st.integers()), junk, max_size=3))
def test_random_overrides_raise_only_profile_error(name: str, overrides: dict[Any, Any]) -> None:
    _only_profile_errors(load_profile, name, overrides, named=_source_of(name))


@FUZZ
@given(junk)
def test_arbitrary_values_raise_only_profile_error(value: Any) -> None:
    _only_profile_errors(profile_from_dict, value, source="given.yaml")  # type: ignore[arg-type]
    _only_profile_errors(load_profile, value)


def test_regressions_found_by_fuzzing() -> None:
    for text in ("!!timestamp 2001-12-14# comment\nname: x\n", "!!timestamp 2001-13-45\n", "!!binary '%%%'\n"):
        _only_profile_errors(profile_from_yaml, text, source="fuzz.yaml")


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["", ".yaml", "/", "~/", "~nouser/", "../"]))
def test_arbitrary_names_and_paths_raise_only_profile_error(text: str, affix: str) -> None:
    _only_profile_errors(load_profile, affix + text if affix.endswith("/") else text + affix)
    _only_profile_errors(profile_from_dict, {"extends": affix + text, "name": "x"}, source="derived.yaml")
