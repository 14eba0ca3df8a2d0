"""Load, resolve and dump device profiles.

* ``load_profile("pcm")`` reads ``device_models/pcm.yaml``; ``load_profile("my/chip.yaml")`` reads
  that file.  ``extends: NAME_OR_PATH`` inherits another profile: the file's own keys are
  deep-merged over the base (mappings merge key by key; a section whose ``kind`` changes, and
  ``citation``, are replaced whole; lists, ``assumptions`` included, are replaced).
* ``overrides={"adc.bits": 6}`` sets dotted paths after inheritance, for sweeps.
* YAML is read with a safe loader only: ``!!python/...`` tags are rejected, never executed;
  duplicate keys are an error.
* Every problem raises :class:`cimsim.errors.ProfileError` with one line per problem,
  ``FILE: dotted.field: what is allowed (got VALUE)`` (see :mod:`cimsim.profiles._messages`).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ProfileError
from ._messages import DOCS_HINT, dotted_path, format_validation_error, show_value
from .schema import DeviceProfile

__all__ = [
    "MAX_PROFILE_BYTES",
    "MAX_PROFILE_VALUES",
    "MODELS_DIR",
    "dump_profile",
    "list_profiles",
    "load_profile",
    "parse_override",
    "profile_from_dict",
    "profile_from_yaml",
    "profile_path",
]

def _models_dir() -> Path:
    """``device_models/`` at the repository root (a checkout or an editable install), else the
    copy a wheel installs as ``cimsim/_device_models/`` (see pyproject.toml)."""
    here = Path(__file__).resolve()
    repo = here.parents[2] / "device_models"
    return repo if repo.is_dir() else here.parents[1] / "_device_models"


MODELS_DIR: Path = _models_dir()
"""Folder of the shipped profiles (``device_models/`` at the repository root)."""

MAX_PROFILE_BYTES = 16 * 1024 * 1024
"""Largest profile file read, in bytes (16 MiB): the largest valid profile (converter tables of
65536 entries) is a few MiB; a bigger file, or a device such as ``/dev/zero``, is refused unread."""

MAX_PROFILE_VALUES = 1_000_000
"""Most values (mappings, lists and scalars, each counted as often as it is reached) that a
profile, or one override, may hold.  The largest valid profile holds about 330 000 (its converter
tables); a YAML alias or a shared Python list is counted at every place it is used, so a
"billion laughs" structure, small in memory but huge once expanded, is refused before anything
copies it."""

_MAX_EXTENDS_DEPTH = 16
_MAX_DEPTH = 32  # a profile nests about 6 levels; anything far deeper is a mistake or an attack
_STRUCTURE = (Mapping, list, tuple, set, frozenset)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
_REPLACED_WHOLE = frozenset({"citation"})  # a derived profile's source is its own, not a mix
#: sections whose ``kind`` is an ordinary field (``mapping.kind``), not the choice of a variant
#: (``drift.kind``): changing it keeps the section's other keys
_PLAIN_KIND = frozenset(
    name for name, f in DeviceProfile.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) and "kind" in f.annotation.model_fields
)


# --------------------------------------------------------------------------- YAML reading
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


def _parse_yaml(text: str, source: str) -> Any:
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


def _check_structure(data: Any, source: str, root: tuple[Any, ...] = ()) -> None:
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


def _mapping_or_error(data: Any, source: str, from_file: bool = False) -> dict[str, Any]:
    """``data`` if it is a mapping with string keys.  For a file that is not one, the message names
    only what was found (its type), never its contents: the file may be anything on the disk."""
    if data is None:
        raise ProfileError(
            f"{source}: (top level): the file is empty: a profile is a mapping with at least name: and conductance: "
            f"(see {DOCS_HINT})"
        )
    if not isinstance(data, dict):
        got = (f"got a YAML {_yaml_kind(data)}: not a device profile" if from_file
               else f"got {type(data).__name__} {show_value(data)}")
        raise ProfileError(
            f"{source}: (top level): must be a YAML mapping of profile fields (name:, conductance:, ...) ({got}; "
            f"see {DOCS_HINT})"
        )
    _check_structure(data, source)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        shown = f"a key of type {type(bad[0]).__name__}" if from_file else show_value(bad[0])
        raise ProfileError(f"{source}: (top level): section names must be strings (got {shown})")
    return data


def _yaml_kind(data: Any) -> str:
    return "list" if isinstance(data, list) else "string" if isinstance(data, str) else "scalar"


def _is_profile_like(data: dict[str, Any], source: str) -> None:
    """Refuse an ``extends:`` target whose top-level keys are not profile fields, without echoing
    them (``extends: ../../etc/some.conf`` must not print the file): a key close to a field name
    (a typo) is named, anything else is only counted."""
    fields = set(DeviceProfile.model_fields) | {"extends"}
    unknown = [k for k in data if k not in fields]
    if not unknown:
        return
    typos = {k: difflib.get_close_matches(k, sorted(fields), n=1, cutoff=0.8) for k in unknown}
    if all(typos.values()):
        named = ", ".join(f"{k!r} (did you mean {v[0]!r}?)" for k, v in typos.items())
        raise ProfileError(f"{source}: (top level): unknown keys {named}; valid keys: {', '.join(sorted(fields))}")
    raise ProfileError(
        f"{source}: (top level): not a device profile: {len(unknown)} of its {len(data)} top-level keys are not profile fields "
        f"(expected a YAML mapping with the fields {', '.join(sorted(fields))}; see {DOCS_HINT})"
    )


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")


def _read_bytes(path: Path, source: str) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_PROFILE_BYTES`.

    ``os.stat`` first, so a FIFO (whose open blocks) or a device (endless) is never opened; then
    the opened descriptor is checked again (the path may have changed in between) and read with a
    bound, so even a file that grows while read cannot exceed the limit.
    """
    limit = f"profiles are regular files of at most {MAX_PROFILE_BYTES} bytes (16 MiB)"
    try:
        st = os.stat(path)
        what = _not_regular(st.st_mode)
        if what is None and st.st_size > MAX_PROFILE_BYTES:
            what = f"{st.st_size} bytes"
        if what is not None:
            raise ProfileError(f"{source}: {what}, not a profile file ({limit}; give the path of a .yaml file)")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            what = _not_regular(os.fstat(f.fileno()).st_mode)
            if what is not None:
                raise ProfileError(f"{source}: {what}, not a profile file ({limit}; give the path of a .yaml file)")
            data = f.read(MAX_PROFILE_BYTES + 1)
    except ProfileError:
        raise
    except FileNotFoundError:
        raise ProfileError(f"{source}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{source}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{source}: more than {MAX_PROFILE_BYTES} bytes, not a profile file ({limit})")
    return data


def _read_file(path: Path, source: str, extended: bool = False) -> dict[str, Any]:
    """The mapping in the YAML file ``path``; ``extended``: it is an ``extends:`` target, whose
    top-level keys must all be profile fields."""
    raw = _read_bytes(path, source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}): not a device profile") from None
    data = _mapping_or_error(_parse_yaml(text, source), source, from_file=True)
    if extended:
        _is_profile_like(data, source)
    return data


# --------------------------------------------------------------------------- names and paths
def list_profiles() -> list[str]:
    """Names of the shipped profiles (``device_models/*.yaml``), sorted."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def _looks_like_path(name_or_path: str | os.PathLike[str]) -> bool:
    if isinstance(name_or_path, os.PathLike):
        return True
    s = str(name_or_path)
    return s.endswith((".yaml", ".yml")) or "/" in s or os.sep in s


def profile_path(name_or_path: str | os.PathLike[str], relative_to: Path | None = None) -> Path:
    """The file a profile name or path refers to; a bare name is a shipped profile."""
    if _looks_like_path(name_or_path):
        try:
            p = Path(name_or_path).expanduser()
            if not p.is_absolute() and relative_to is not None:
                p = relative_to / p
            p.is_file()  # raises on a null byte, a name too long ...
        except (OSError, ValueError, RuntimeError) as exc:
            raise ProfileError(f"{show_value(str(name_or_path))}: not a usable path ({exc})") from None
        return p
    name = str(name_or_path)
    if not _NAME.fullmatch(name):
        raise ProfileError(
            f"{show_value(name)}: not a shipped profile name (letters, digits, _ . -) nor a path to a .yaml file"
        )
    p = MODELS_DIR / f"{name}.yaml"
    if not p.is_file():
        names = list_profiles()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProfileError(
            f"{name}: no shipped profile of that name{hint} (shipped: {', '.join(names) or 'none'}; "
            "a path to a .yaml file also works)"
        )
    return p


def _display(path: Path) -> str:
    """The path as messages show it: relative to the working directory when inside it; quoted
    when it holds a newline or another unprintable character (one message line per problem)."""
    try:
        text = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError, RuntimeError):
        text = str(path)
    return text if text.isprintable() else show_value(text)


def _key(path: Path) -> str:
    """Identity of a file for cycle detection."""
    try:
        return str(path.resolve())
    except (OSError, ValueError, RuntimeError):
        return str(path.absolute())


# --------------------------------------------------------------------------- merging
def _merge(base: Any, over: Any, key: str | None = None) -> Any:
    """Deep merge ``over`` onto ``base`` (neither is modified)."""
    if key in _REPLACED_WHOLE or not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    if key not in _PLAIN_KIND and "kind" in over and base.get("kind") != over.get("kind"):
        return copy.deepcopy(over)  # another variant: the base's keys would not fit it
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v, k) if k in out else copy.deepcopy(v)
    return out


def _resolve_extends(data: dict[str, Any], source: str, base_dir: Path | None, chain: tuple[str, ...]) -> dict[str, Any]:
    if "extends" not in data:
        return data
    data = dict(data)
    ext = data.pop("extends")
    if not isinstance(ext, str) or not ext.strip():
        raise ProfileError(f"{source}: extends: must be a profile name or a path to a .yaml file (got {show_value(ext)})")
    if len(chain) >= _MAX_EXTENDS_DEPTH:
        raise ProfileError(f"{source}: extends: more than {_MAX_EXTENDS_DEPTH} levels of inheritance (got {' -> '.join(chain)})")
    try:
        path = profile_path(ext, relative_to=base_dir)
    except ProfileError as exc:
        raise ProfileError(f"{source}: extends: {exc}") from None
    key = _key(path)
    if key in chain:
        names = " -> ".join(Path(c).name for c in (*chain, key))
        raise ProfileError(f"{source}: extends: circular inheritance ({names})")
    base_source = _display(path)
    try:
        base_data = _read_file(path, base_source, extended=True)
    except ProfileError as exc:
        raise ProfileError(f"{source}: extends: {exc}") from None
    base = _resolve_extends(base_data, base_source, path.parent, (*chain, key))
    merged = _merge(base, data)
    if "name" not in data and base_dir is not None and source.endswith((".yaml", ".yml")):
        merged["name"] = Path(source).stem  # a derived file without a name: its file name
    return merged


# --------------------------------------------------------------------------- overrides
def _plain(value: Any) -> Any:
    """numpy scalars/arrays -> Python values, so overrides from a sweep validate and dump cleanly."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``"adc.bits=6"`` -> ``("adc.bits", 6)``: the value is read as YAML (``null``, ``[1, 2]`` ...)."""
    if "=" not in text:
        raise ProfileError(f"override {text!r}: expected dotted.path=value, e.g. adc.bits=6")
    key, raw = text.split("=", 1)
    return key.strip(), _parse_yaml(raw, f"override {key.strip()}")


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], source: str) -> dict[str, Any]:
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
        _check_structure(value, source, root=tuple(parts))
        value = _plain(value)
        if last == "kind" and node.get("kind") != value and (len(parts) < 2 or parts[-2] not in _PLAIN_KIND):
            node.clear()  # another variant: the old one's keys would not fit it
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            node[last] = _merge(node[last], value, last)
        else:
            node[last] = value
    return out


# --------------------------------------------------------------------------- public API
def _validate(data: dict[str, Any], source: str) -> DeviceProfile:
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(exc, source)) from None
    except RecursionError:
        raise ProfileError(f"{source}: (top level): nested too deeply to be a device profile") from None


def _finish(data: dict[str, Any], source: str, base_dir: Path | None, overrides: Mapping[str, Any] | None,
            chain: tuple[str, ...] = ()) -> DeviceProfile:
    data = _resolve_extends(data, source, base_dir, chain)
    if overrides:
        if not isinstance(overrides, Mapping):
            raise ProfileError(f"{source}: overrides: must be a mapping of dotted paths to values (got {show_value(overrides)})")
        source = f"{source} (with overrides)"
        data = _apply_overrides(data, overrides, source)
    return _validate(data, source)


def load_profile(name_or_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> DeviceProfile:
    """Load a shipped profile by name (``"pcm"``) or a YAML file by path, resolving ``extends:``.

    ``overrides`` maps dotted paths to values, e.g. ``{"adc.bits": 6, "drift.kind": "none"}``.
    Raises :class:`~cimsim.errors.ProfileError` (one line per problem) on any invalid input.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise ProfileError(f"profile: expected a shipped profile name or a path to a .yaml file (got {show_value(name_or_path)})")
    path = profile_path(name_or_path)
    source = _display(path)
    return _finish(_read_file(path, source), source, path.parent, overrides, (_key(path),))


def profile_from_dict(data: Mapping[str, Any], source: str = "<dict>",
                      overrides: Mapping[str, Any] | None = None) -> DeviceProfile:
    """Validate a profile given as a mapping (``extends:`` names resolve against the shipped ones)."""
    if not isinstance(data, Mapping):
        raise ProfileError(f"{source}: (top level): a profile must be a mapping (got {type(data).__name__} {show_value(data)})")
    _check_structure(data, source)
    return _finish(_mapping_or_error(_plain(dict(data)), source), source, None, overrides)


def profile_from_yaml(text: str, source: str = "<string>",
                      overrides: Mapping[str, Any] | None = None) -> DeviceProfile:
    """Validate a profile given as YAML text."""
    return _finish(_mapping_or_error(_parse_yaml(text, source), source), source, None, overrides)


def dump_profile(profile: DeviceProfile) -> str:
    """The fully resolved profile as YAML; ``profile_from_yaml(dump_profile(p)) == p``."""
    return profile.to_yaml()
