"""The JSON Schema of a profile file, for editors and checkers (``cimsim profile schema``).

A file is one of two things, told apart by ``extends:``:

* a complete profile (no ``extends:``): :class:`~cimsim.profiles.schema.DeviceProfile`'s schema,
  ``name`` and ``conductance`` required, every section as strict as the loader;
* a derived file (``extends:`` present): the same fields, none required, at any depth: the file
  is deep-merged over its parent, so ``drift: {t0_s: 30}`` (no ``kind``) is a valid change to a
  parent's power-law drift.  Each definition gets a ``Partial`` copy without ``required``, and a
  choice of variants (``oneOf`` on ``kind``) becomes ``anyOf``, since a partial section may fit
  several variants.

The schema accepts every file :func:`~cimsim.profiles.load_profile` accepts (a test runs a
validator over the shipped profiles and derived ones); the loader checks more (cross-field rules,
laws evaluated on x in [0, 1]) than a schema can say.
"""

from __future__ import annotations

import copy
from typing import Any

from .schema import DeviceProfile

__all__ = ["SCHEMA_URI", "profile_json_schema"]

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_PARTIAL = "Partial"
_EXTENDS = {"type": "string", "minLength": 1, "description": "name of a shipped profile, or path (relative to this file) of a profile to inherit from"}


def _partial(node: Any) -> Any:
    """``node`` with no ``required`` anywhere, ``oneOf`` as ``anyOf`` and refs to the partial defs."""
    if isinstance(node, list):
        return [_partial(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("required", "discriminator"):
            continue
        if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
            out[k] = "#/$defs/" + _PARTIAL + v.removeprefix("#/$defs/")
        elif k == "properties":  # field names, not keywords
            out[k] = {name: _partial(sub) for name, sub in v.items()}
        else:
            out["anyOf" if k == "oneOf" else k] = _partial(v)
    return out


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a profile file, complete or derived (``extends:``)."""
    full = DeviceProfile.model_json_schema()
    defs: dict[str, Any] = full.pop("$defs", {})
    defs["DeviceProfile"] = full
    partial = {_PARTIAL + name: _partial(d) for name, d in defs.items()}
    root = copy.deepcopy(partial[_PARTIAL + "DeviceProfile"])
    root["properties"] = {"extends": _EXTENDS, **root["properties"]}
    root["required"] = ["extends"]
    root["title"] = "Derived device profile (extends:)"
    partial[_PARTIAL + "DeviceProfile"] = root
    return {
        "$schema": SCHEMA_URI,
        "title": "cimsim device profile",
        "description": "A cimsim device profile (docs/profiles.md): a complete profile, or a file with extends: "
                       "that changes some fields of another profile.",
        "type": "object",
        "if": {"required": ["extends"]},
        "then": {"$ref": "#/$defs/" + _PARTIAL + "DeviceProfile"},
        "else": {"$ref": "#/$defs/DeviceProfile"},
        "$defs": {**defs, **partial},
    }
