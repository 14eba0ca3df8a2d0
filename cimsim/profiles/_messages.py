"""Turn a pydantic ``ValidationError`` into one readable line per problem.

Each line reads ``SOURCE: dotted.field: what is allowed (got VALUE)``.  The schema is walked
along the error location to find the field's bounds, description, literal choices and the valid
keys of a section (for "did you mean").  Discriminated-union tags that pydantic inserts into the
location (``drift.power_law.t0_s``) are dropped, so paths match the YAML the user wrote.
"""

from __future__ import annotations

import difflib
import math
import re
import reprlib
import types
import typing
from typing import Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


__all__ = ["DOCS_HINT", "dotted_path", "format_number", "format_validation_error", "show_value"]

DOCS_HINT = "docs/profiles.md"
_MAX_SHOWN = 60
_MAX_LINES = 40
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 3, 6, 4, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 50, 50, 40


def show_value(value: Any) -> str:
    """A short, YAML-flavoured rendering of an offending value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    try:
        text = _REPR.repr(value)  # bounded: a huge or deeply nested value costs nothing to show
    except Exception:  # noqa: BLE001 - a value whose repr fails must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# --------------------------------------------------------------------------- schema walking
def _strip_annotated(ann: Any) -> tuple[Any, list[Any]]:
    meta: list[Any] = []
    while typing.get_origin(ann) is typing.Annotated:
        args = typing.get_args(ann)
        ann, meta = args[0], [*meta, *args[1:]]
    return ann, meta


def _union_args(ann: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(ann) in (Union, types.UnionType):
        return typing.get_args(ann)
    return None


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _variants(ann: Any) -> list[type[BaseModel]]:
    """The models of a discriminated union (empty if ``ann`` is not one)."""
    ann, _ = _strip_annotated(ann)
    args = _union_args(ann)
    if not args:
        return []
    models = [_strip_annotated(a)[0] for a in args]
    return [m for m in models if _is_model(m)] if all(_is_model(m) for m in models) else []


def _tag_of(model: type[BaseModel]) -> list[str]:
    f = model.model_fields.get("kind")
    if f is None:
        return []
    return [str(a) for a in typing.get_args(f.annotation)]


class _Site:
    """What the walk found at the end of an error location."""

    def __init__(self, root: type[BaseModel]) -> None:
        self.path: list[str] = []
        self.model: type[BaseModel] | None = root  # the section containing the last key
        self.field: FieldInfo | None = None
        self.ann: Any = root  # annotation of the value at the location


def _walk(loc: tuple[Any, ...], root: type[BaseModel]) -> _Site:
    site = _Site(root)
    ann: Any = root
    for seg in loc:
        base, _ = _strip_annotated(ann)
        variants = _variants(base)
        if variants:
            chosen = [v for v in variants if str(seg) in _tag_of(v)]
            if chosen:  # pydantic's union tag, not a key the user wrote
                ann = chosen[0]
                site.ann = ann
                continue
            ann = None
        base, _ = _strip_annotated(ann)
        nullable = _union_args(base)
        if nullable and type(None) in nullable:
            rest = [a for a in nullable if a is not type(None)]
            base = _strip_annotated(rest[0])[0] if len(rest) == 1 else base
        if _is_model(base):
            site.model = base
            site.field = base.model_fields.get(str(seg))
            ann = site.field.annotation if site.field is not None else None
            site.path.append(str(seg))
        elif isinstance(seg, int) and typing.get_origin(base) is list:
            ann = typing.get_args(base)[0]
            site.path.append(f"[{seg}]")
            site.field = None
        else:
            ann = None
            site.field = None
            site.path.append(str(seg))
        site.ann = ann
    return site


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def _key_text(key: str) -> str:
    """A key as one path segment: quoted unless plain (so that a key holding ``.``, ``:``, a space
    or a newline cannot pass for another path, or split the message's line)."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    return repr(key if len(key) <= 40 else key[:37] + "...")  # shortened inside the quotes, which stay paired


def dotted_path(parts: tuple[Any, ...] | list[Any]) -> str:
    """``adc.range.bound``, ``assumptions[2]``; "(top level)" for no parts.  Integer parts are
    list indices; string parts are keys (quoted unless plain)."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            seg = _key_text(str(p))
            out += seg if not out else f".{seg}"
    return out or "(top level)"


def _dotted(parts: list[str]) -> str:
    out = ""
    for p in parts:
        seg = p if p.startswith("[") and p.endswith("]") and p[1:-1].isdigit() else _key_text(p)
        out += seg if (seg.startswith("[") or not out) else f".{seg}"
    return out or "(top level)"


def _constraints(site: _Site) -> tuple[dict[str, float], bool, str]:
    """(bounds, nullable, 'an integer' | 'a number') for the field at ``site``."""
    bounds: dict[str, float] = {}
    nullable = False
    word = "a number"

    def collect(items: list[Any]) -> None:
        for m in items:
            if isinstance(m, FieldInfo):
                collect(list(m.metadata))
            elif isinstance(m, (at.Ge, at.Gt, at.Le, at.Lt)):
                name = type(m).__name__.lower()
                bounds[name] = getattr(m, name)

    if site.field is not None:
        collect(list(site.field.metadata))
    ann = site.ann
    base, meta = _strip_annotated(ann)
    collect(meta)
    args = _union_args(base)
    if args and type(None) in args:
        nullable = True
        for a in args:
            if a is not type(None):
                base, meta = _strip_annotated(a)
                collect(meta)
    if base is int:
        word = "an integer"
    return bounds, nullable, word


def format_number(v: float) -> str:
    """A bound as written in YAML: 16, 0.5, 1e6, 1e-12, 4.35e17."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e6):
        return str(int(v))
    p = next((p for p in range(1, 18) if float(f"{v:.{p}g}") == v), 17)  # fewest digits that give v back
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), f"{v:.{p}g}")


def _allowed_number(site: _Site, word: str | None = None) -> str:
    bounds, nullable, default_word = _constraints(site)
    word = word or default_word
    lo = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    hi = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if lo and hi:
        text = f"{word} in {lo[0]}{format_number(lo[1])}, {format_number(hi[1])}{hi[0]}"
    elif lo:
        text = f"{word} {'>=' if lo[0] == '[' else '>'} {format_number(lo[1])}"
    elif hi:
        text = f"{word} {'<=' if hi[0] == ']' else '<'} {format_number(hi[1])}"
    else:
        text = word
    return text + (" or null" if nullable else "")


def _did_you_mean(word: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _quoted(choices: list[str]) -> str:
    return ", ".join(repr(c) for c in choices)


_VALIDATOR_FIELD = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.S)


def _line(err: dict[str, Any], source: str, root: type[BaseModel]) -> str:
    etype: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    loc = tuple(err.get("loc") or ())
    site = _walk(loc, root)
    path = _dotted(site.path)
    got = f"(got {show_value(err.get('input'))})"

    if etype == "missing":
        desc = f": {site.field.description}" if site.field is not None and site.field.description else ""
        return f"{source}: {path}: is required{desc} (missing)"
    if etype == "extra_forbidden":
        keys = sorted(site.model.model_fields) if site.model is not None else []
        key = site.path[-1] if site.path else "?"
        return (f"{source}: {path}: unknown key{_did_you_mean(key, keys)}; valid keys here: {', '.join(keys)} "
                f"(got {_key_text(key)}: {show_value(err.get('input'))})")
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        tags = [t for v in _variants(site.ann) for t in _tag_of(v)]
        if etype == "union_tag_not_found":
            return f"{source}: {path}.kind: is required, one of {_quoted(tags)} (missing)"
        tag = ctx.get("tag", err.get("input"))
        return f"{source}: {path}.kind: must be one of {_quoted(tags)}{_did_you_mean(tag, tags)} (got {show_value(tag)})"
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
                 "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "int_parsing_size"):
        word = "an integer" if etype.startswith("int") else None
        return f"{source}: {path}: must be {_allowed_number(site, word)} {got}"
    if etype in ("bool_type", "bool_parsing"):
        return f"{source}: {path}: must be true or false {got}"
    if etype in ("string_type", "string_unicode"):
        return f"{source}: {path}: must be a string {got}"
    if etype == "string_too_short":
        return f"{source}: {path}: must not be empty {got}"
    if etype == "string_pattern_mismatch":
        return f"{source}: {path}: must match {ctx.get('pattern')} (letters, digits, _ . -) {got}"
    if etype == "literal_error":
        base, _ = _strip_annotated(site.ann)
        choices = [str(a) for a in typing.get_args(base)] if typing.get_origin(base) is Literal else []
        dym = _did_you_mean(err.get("input"), choices) if choices else ""
        return f"{source}: {path}: must be one of {ctx.get('expected')}{dym} {got}"
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        variants = _variants(site.ann)
        if variants:
            tags = [t for v in variants for t in _tag_of(v)]
            what = f"a mapping with kind: one of {_quoted(tags)}"
        else:
            base, _ = _strip_annotated(site.ann)
            args = _union_args(base)
            if args and type(None) in args:
                rest = [_strip_annotated(a)[0] for a in args if a is not type(None)]
                base = rest[0] if len(rest) == 1 else base
            keys = sorted(base.model_fields) if _is_model(base) else []
            what = f"a mapping with keys {', '.join(keys)}" if keys else "a mapping"
        return f"{source}: {path}: must be {what} {got}"
    if etype == "list_type":
        return f"{source}: {path}: must be a list {got}"
    if etype in ("too_short", "too_long"):
        lo, hi = ctx.get("min_length"), ctx.get("max_length")
        limit = f"at least {lo}" if etype == "too_short" else f"at most {hi}"
        return f"{source}: {path}: must have {limit} items (got {ctx.get('actual_length')})"
    if etype in ("value_error", "assertion_error"):
        msg = str(ctx.get("error", err.get("msg", "")))
        m = _VALIDATOR_FIELD.match(msg)
        if m:
            sub = m.group(1)
            full = sub if not site.path else f"{path}.{sub}"
            return f"{source}: {full}: {m.group(2)}"
        return f"{source}: {path}: {msg}"
    return f"{source}: {path}: {err.get('msg', etype)} {got}"


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel]) -> str:
    """One line per problem of validating ``root`` (the profile class), then a pointer to the
    field reference."""
    lines: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors[:_MAX_LINES]:
        try:
            line = _line(dict(err), source, root)
        except Exception as inner:  # noqa: BLE001 - never let the formatter hide the error
            line = f"{source}: {'.'.join(map(str, err.get('loc', ())))}: {err.get('msg')} ({type(inner).__name__} while formatting)"
        if line not in lines:
            lines.append(line)
    if len(errors) > _MAX_LINES:
        lines.append(f"{source}: ... and {len(errors) - _MAX_LINES} more problems")
    lines.append(f"(every field, its unit and its allowed values: {DOCS_HINT})")
    return "\n".join(lines)
