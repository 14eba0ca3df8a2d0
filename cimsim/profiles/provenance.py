"""Provenance of derived profiles: what a profile made by ``extends:`` or by overrides says about
where its numbers come from.

A derived profile is its parent with some fields changed, so the parent's citation, assumptions,
name and description describe the parent, not it.  :func:`derive` gives the child, unless it set
them itself:

* ``derived_from``: the parent's name; ``changed_fields``: the dotted fields whose resolved value
  differs from the parent's (a section whose variant ``kind`` changed is one entry, ``drift``);
* ``name``: ``<parent>-derived`` (a derived file without ``name:`` takes its file name instead);
* ``description``: ``Derived from <parent> with <fields> changed.`` and the parent's description;
* ``citation``: ``derived from <parent> (<parent's reference, doi>)`` and a note that the changed
  fields are not from that source; no DOI, URL or figure of its own;
* ``assumptions``: one saying which fields are not from the parent's source, then the parent's,
  each marked ``as <parent>:``.

Only text fields are touched: the device laws, and so every simulated number, are the child's.
Like :mod:`.tree`, nothing here knows the profile class: it is passed in (``model``).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["PROVENANCE_FIELDS", "changed_fields", "derive", "plain_kinds"]

PROVENANCE_FIELDS = ("name", "device", "description", "citation", "assumptions", "derived_from", "changed_fields")
"""Top-level fields that describe a profile rather than the device; never counted as changed."""

_MISSING = object()
_SUFFIX = "-derived"


@functools.cache
def plain_kinds(model: type[BaseModel]) -> frozenset[str]:
    """Sections of ``model`` whose ``kind`` is an ordinary field (``mapping.kind``), not the choice
    of a variant (``drift.kind``): changing it keeps the section's other keys."""
    return frozenset(
        name for name, f in model.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) and "kind" in f.annotation.model_fields
    )


def changed_fields(parent: Any, child: Any, model: type[BaseModel], path: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths where ``child`` differs from ``parent`` (plain data, e.g. two dumps), in the
    child's order; a section whose variant ``kind`` differs is one path, a list is one value."""
    if isinstance(parent, dict) and isinstance(child, dict) and (
        parent.get("kind") == child.get("kind") or (len(path) == 1 and path[0] in plain_kinds(model))
    ):
        out: list[str] = []
        for k in dict.fromkeys([*child, *parent]):
            if not path and k in PROVENANCE_FIELDS:
                continue
            out += changed_fields(parent.get(k, _MISSING), child.get(k, _MISSING), model, (*path, str(k)))
        return out
    return [] if parent == child else [".".join(path)]


def _dump(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` validated and dumped with every default spelled out; None when it is not valid
    on its own (a partial base: the final validation reports the child's problems)."""
    try:
        return model.model_validate(data).model_dump(mode="json")
    except (ValidationError, ValueError, TypeError, RecursionError):
        return None


def _citation_text(citation: Any) -> str | None:
    if not isinstance(citation, dict) or not citation.get("reference"):
        return None
    ref = " ".join(str(citation["reference"]).split())
    return ref + (f", doi:{citation['doi']}" if citation.get("doi") else f", {citation['url']}" if citation.get("url") else "")


def derive(model: type[BaseModel], parent: dict[str, Any], child: dict[str, Any], own: Collection[str]) -> dict[str, Any]:
    """``child`` (plain data: ``parent`` with changes) with its provenance fields set, see the
    module docstring; ``own``: the top-level fields the child set itself, which are kept."""
    child_full = _dump(model, child)
    if child_full is None:
        return child  # invalid: validation reports it, naming the child's fields
    parent_full = _dump(model, parent) or parent
    parent_name = str(parent_full.get("name") or "profile")
    changed = changed_fields(parent_full, child_full, model)
    what = ", ".join(changed) if changed else "no device field"
    out = dict(child, derived_from=parent_name, changed_fields=changed)
    if "name" not in own:
        out["name"] = parent_name if parent_name.endswith(_SUFFIX) else parent_name + _SUFFIX
    if "description" not in own:
        base = " ".join(str(parent_full.get("description") or "").split())
        out["description"] = f"Derived from {parent_name} with {what} changed." + (f" {parent_name}: {base}" if base else "")
    if "citation" not in own:
        ref = _citation_text(parent_full.get("citation"))
        out["citation"] = None if ref is None else {
            "reference": f"derived from {parent_name} ({ref}); {what} changed, not from that source"
        }
    if "assumptions" not in own:
        first = f"Derived from {parent_name}: {what} set here, not taken from {parent_name}'s source."
        out["assumptions"] = [first, *(f"as {parent_name}: {a}" for a in parent_full.get("assumptions") or [])]
    return out
