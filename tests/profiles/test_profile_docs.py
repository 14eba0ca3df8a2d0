"""docs/profiles.md is generated from the schema and must be up to date; every field is described."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from cimsim.profiles import docgen
from cimsim.profiles import functions as fn
from cimsim.profiles import schema as sc


def test_docs_profiles_md_is_up_to_date() -> None:
    current = docgen.DOCS_PATH.read_text(encoding="utf-8")
    assert current == docgen.render(), "docs/profiles.md is stale: run `python -m cimsim.profiles.docgen`"


def test_docgen_check_mode_agrees() -> None:
    assert docgen.main(["--check"]) == 0


def _all_models() -> list[type[BaseModel]]:
    found = [getattr(sc, n) for n in sc.__all__] + [getattr(fn, n) for n in fn.__all__]
    return [m for m in found if isinstance(m, type) and issubclass(m, BaseModel)]


def test_every_field_has_a_description() -> None:
    missing = [
        f"{m.__name__}.{name}"
        for m in _all_models()
        for name, f in m.model_fields.items()
        if not (f.description or "").strip() and name != "kind"
    ]
    assert not missing, missing


def test_every_section_is_documented() -> None:
    text = docgen.render()
    for m in _all_models():
        tags = typing.get_args(m.model_fields["kind"].annotation) if "kind" in m.model_fields else ()
        if len(tags) == 1:  # a variant of a discriminated union
            assert f"kind `{tags[0]}`" in text, m.__name__
        assert all(f"`{name}`" in text for name in m.model_fields), m.__name__
