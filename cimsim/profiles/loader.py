"""Load, resolve and dump device profiles.

* ``load_profile("pcm")`` reads ``device_models/pcm.yaml``; ``load_profile("my/chip.yaml")`` reads
  that file.  ``extends: NAME_OR_PATH`` inherits another profile: the file's own keys are
  deep-merged over the base (mappings merge key by key; a section whose ``kind`` changes, and
  ``citation``, are replaced whole; lists, ``assumptions`` included, are replaced).
* ``overrides={"adc.bits": 6}`` sets dotted paths after inheritance, for sweeps.
* A derived profile (``extends:`` or overrides) records ``derived_from`` and ``changed_fields``
  and never presents its parent's name, description, citation or assumptions as its own
  (:mod:`cimsim.profiles.provenance`).
* YAML is read with a safe loader only: ``!!python/...`` tags are rejected, never executed;
  duplicate keys are an error.
* Every problem raises :class:`cimsim.errors.ProfileError` with one line per problem,
  ``FILE: dotted.field: what is allowed (got VALUE)`` (see :mod:`cimsim.profiles._messages`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from ..errors import ProfileError
from ._messages import DOCS_HINT, show_value
from .provenance import derive
from .schema import DeviceProfile
from .tree import MAX_PROFILE_VALUES, check_structure, merge, parse_override, parse_yaml, plain, with_overrides

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

_MAX_EXTENDS_DEPTH = 16
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")


# --------------------------------------------------------------------------- files
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
    check_structure(data, source)
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
    data = _mapping_or_error(parse_yaml(text, source), source, from_file=True)
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


# --------------------------------------------------------------------------- inheritance
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
    merged = merge(base, data, DeviceProfile)
    own = set(data)
    if "name" not in data and base_dir is not None and source.endswith((".yaml", ".yml")):
        merged["name"] = Path(source).stem  # a derived file without a name: its file name
        own.add("name")
    return derive(DeviceProfile, base, merged, own)


# --------------------------------------------------------------------------- public API
def _finish(data: dict[str, Any], source: str, base_dir: Path | None, overrides: Mapping[str, Any] | None,
            chain: tuple[str, ...] = ()) -> DeviceProfile:
    return with_overrides(DeviceProfile, _resolve_extends(data, source, base_dir, chain), source, overrides)


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
    check_structure(data, source)
    return _finish(_mapping_or_error(plain(dict(data)), source), source, None, overrides)


def profile_from_yaml(text: str, source: str = "<string>",
                      overrides: Mapping[str, Any] | None = None) -> DeviceProfile:
    """Validate a profile given as YAML text."""
    return _finish(_mapping_or_error(parse_yaml(text, source), source), source, None, overrides)


def dump_profile(profile: DeviceProfile) -> str:
    """The fully resolved profile as YAML; ``profile_from_yaml(dump_profile(p)) == p``."""
    return profile.to_yaml()


def profile_sha256(profile: DeviceProfile) -> str:
    """sha256 of the resolved profile (its JSON dump with sorted keys): two profiles with the
    same laws, peripherals and provenance have the same hash whatever file or name they came from.
    Saved models and drift reports record it beside the profile itself."""
    text = json.dumps(profile.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
