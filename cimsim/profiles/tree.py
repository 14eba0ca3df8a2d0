"""Profiles as plain data, before and while they are validated: safe YAML parsing, the size and
depth limits, deep merging (``extends:``), dotted-path overrides, and validation into the profile
class with one-line messages.

Nothing here knows the profile class: it is passed in (``model``), so both the loader and
``DeviceProfile.with_overrides`` (in schema.py, which this module sits below) use the same code.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ProfileError
from ._messages import dotted_path, format_validation_error, show_value
from .provenance import derive, plain_kinds

__all__ = [
    "MAX_PROFILE_VALUES",
    "apply_overrides",
    "check_structure",
    "merge",
    "parse_override",
    "parse_yaml",
    "plain",
    "plain_kinds",
    "validate",
    "with_overrides",
]

M = TypeVar("M", bound=BaseModel)

MAX_PROFILE_VALUES = 1_000_000
"""Most values (mappings, lists and scalars, each counted as often as it is reached) that a
profile, or one override, may hold.  The largest valid profile holds about 330 000 (its converter
tables); a YAML alias or a shared Python list is counted at every place it is used, so a
"billion laughs" structure, small in memory but huge once expanded, is refused before anything
copies it."""

_MAX_DEPTH = 32  # a profile nests about 6 levels; anything far deeper is a mistake or an attack
_STRUCTURE = (Mapping, list, tuple, set, frozenset)
_REPLACED_WHOLE = frozenset({"citation"})  # a derived profile's source is its own, not a mix


class _SafeUniqueLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also rejects duplicate keys in a mapping."""


def _construct_mapping(loader: _SafeUniqueLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: SafeLoader reports it below
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (each key may appear once per mapping)", key_node.start_mark
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_SafeUniqueLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_SafeUniqueLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor for the tag" in problem:
            tag = problem.split("tag", 1)[1].strip().strip("'\"")
            tag = tag.replace("tag:yaml.org,2002:", "!!")
            problem = f"tag {tag} is not allowed: profiles are plain YAML (read with a safe loader); remove the tag"
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ProfileError(f"{where}: {kind}: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else show_value(exc.character)
        raise ProfileError(f"{source}:{line}:{col}: YAML error: unacceptable character {char}: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: (top level): YAML error: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ProfileError(f"{source}: (top level): YAML nested too deeply to be a device profile") from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors can fail oddly on bad scalars
        raise ProfileError(
            f"{source}: (top level): YAML error: unreadable value ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None


def check_structure(data: Any, source: str, root: tuple[Any, ...] = ()) -> None:
    """Reject structures nested deeper than any profile, self-referencing YAML aliases, and
    structures holding more than :data:`MAX_PROFILE_VALUES` values once shared parts are expanded.
    Messages name the field (``root`` + the path inside ``data``) where the problem is.

    The expanded size of each distinct mapping or list is computed once (memoised by identity),
    so the check costs the structure's size in memory, not its expanded size.
    """
    if not isinstance(data, _STRUCTURE):
        if _leaf_size(data) > MAX_PROFILE_VALUES:
            _too_many_values(source, root)
        return
    size: dict[int, int] = {}  # expanded value count of each distinct mapping/list already left
    on_path: set[int] = set()
    stack: list[tuple[Any, tuple[Any, ...], list[Any] | None]] = [(data, root, None)]
    while stack:
        node, path, children = stack.pop()
        if children is not None:  # leaving: every child's size is known
            on_path.discard(id(node))
            total = 1 + sum(size.get(id(c), 1) if isinstance(c, _STRUCTURE) else _leaf_size(c) for c in children)
            if total > MAX_PROFILE_VALUES:
                _too_many_values(source, path)
            size[id(node)] = total  # `data` keeps every node alive, so ids are not reused
            continue
        if not isinstance(node, _STRUCTURE):
            continue
        where = dotted_path(path)
        if id(node) in on_path:
            raise ProfileError(
                f"{source}: {where}: a mapping or list contains itself (a recursive YAML alias?), which no profile needs"
            )
        if id(node) in size:
            continue
        if len(path) - len(root) > _MAX_DEPTH:
            raise ProfileError(f"{source}: {where}: nested deeper than {_MAX_DEPTH} levels, more than any device profile")
        on_path.add(id(node))
        if isinstance(node, Mapping):
            items = list(node.items())
            kids = [*(k for k, _ in items), *(v for _, v in items)]
            below = [(v, (*path, k if isinstance(k, str) else show_value(k))) for k, v in items]
            below += [(k, path) for k, _ in items]  # a key (a tuple from a YAML complex key) sits where its mapping is
        else:
            kids = list(node)
            below = [(c, (*path, i)) for i, c in enumerate(kids)]
        stack.append((node, path, kids))
        stack.extend((c, p, None) for c, p in below if isinstance(c, _STRUCTURE) and id(c) not in size)


def _too_many_values(source: str, path: tuple[Any, ...]) -> None:
    raise ProfileError(
        f"{source}: {dotted_path(path)}: holds more than {MAX_PROFILE_VALUES} values once shared parts (YAML aliases, a list "
        "repeated with [x] * n) are expanded, more than any device profile; write the values out, or "
        "check for an alias or shared list used many times over"
    )


def _leaf_size(value: Any) -> int:
    """Values a leaf stands for: an array's element count (it becomes a list), else 1."""
    return int(value.size) + 1 if isinstance(value, np.ndarray) else 1


def merge(base: Any, over: Any, model: type[BaseModel], key: str | None = None) -> Any:
    """Deep merge ``over`` onto ``base`` (neither is modified); ``model`` is the profile class,
    whose plain ``kind`` sections (see :func:`plain_kinds`) merge key by key whatever their kind."""
    if key in _REPLACED_WHOLE or not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    if key not in plain_kinds(model) and "kind" in over and base.get("kind") != over.get("kind"):
        return copy.deepcopy(over)  # another variant: the base's keys would not fit it
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v, model, k) if k in out else copy.deepcopy(v)
    return out


def plain(value: Any) -> Any:
    """numpy scalars/arrays -> Python values, so overrides from a sweep validate and dump cleanly."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``"adc.bits=6"`` -> ``("adc.bits", 6)``: the value is read as YAML (``null``, ``[1, 2]`` ...)."""
    if "=" not in text:
        raise ProfileError(f"override {text!r}: expected dotted.path=value, e.g. adc.bits=6")
    key, raw = text.split("=", 1)
    return key.strip(), parse_yaml(raw, f"override {key.strip()}")


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], source: str,
                    model: type[BaseModel]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted path of ``overrides`` set (``model``: the profile class)."""
    out = copy.deepcopy(data)
    # a `kind` change first, so that the variant's own keys set afterwards survive
    items = sorted(overrides.items(), key=lambda kv: not str(kv[0]).endswith("kind"))
    for dotted, value in items:
        if not isinstance(dotted, str) or not dotted or any(not p for p in dotted.split(".")):
            raise ProfileError(f"{source}: override {show_value(dotted)}: must be a dotted field path such as adc.bits")
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ProfileError(
                    f"{source}: override {dotted_path(parts)}: {dotted_path(parts[: i + 1])} is a value, not a section "
                    f"(got {show_value(child)})"
                )
            node = child
        last = parts[-1]
        check_structure(value, source, root=tuple(parts))
        value = plain(value)
        if last == "kind" and node.get("kind") != value and (len(parts) < 2 or parts[-2] not in plain_kinds(model)):
            node.clear()  # another variant: the old one's keys would not fit it
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            node[last] = merge(node[last], value, model, last)
        else:
            node[last] = value
    return out


def validate(model: type[M], data: dict[str, Any], source: str) -> M:
    """``model`` validated from ``data``; any problem raises ProfileError, one line per problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(exc, source, model)) from None
    except RecursionError:
        raise ProfileError(f"{source}: (top level): nested too deeply to be a device profile") from None



def with_overrides(model: type[M], data: dict[str, Any], source: str, overrides: Mapping[str, Any] | None) -> M:
    """``data`` (inheritance resolved) with ``overrides`` applied, validated as ``model``; with
    overrides it is a derived profile, whose provenance fields :func:`.provenance.derive` sets."""
    if overrides:
        if not isinstance(overrides, Mapping):
            raise ProfileError(f"{source}: overrides: must be a mapping of dotted paths to values (got {show_value(overrides)})")
        source = f"{source} (with overrides)"
        own = {str(k).split(".")[0] for k in overrides}
        data = derive(model, data, apply_overrides(data, overrides, source, model), own)
    return validate(model, data, source)
