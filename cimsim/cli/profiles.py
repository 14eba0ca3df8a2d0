"""``cimsim profile ...``: list, show, validate and describe device profiles."""

from __future__ import annotations

import json
import re

import click

from ..errors import ProfileError
from ..profiles import DeviceProfile, dump_profile, list_profiles, load_profile, parse_override
from . import fit

__all__ = ["register"]


def _fail(exc: ProfileError) -> None:
    for line in str(exc).splitlines():
        click.echo(line, err=True)
    raise SystemExit(1)


def _summary(p: DeviceProfile) -> tuple[str, str]:
    device = p.device or (re.split(r"(?<!al)\. ", p.description)[0].strip().rstrip(".") if p.description else "")
    source = ""
    if p.citation is not None:
        source = p.citation.reference.split('"')[0].strip().rstrip(",")
        first = source.split(",")[0].strip()
        if "et al" in first:  # "A. Author et al., venue ...": the authors
            source = first
        elif source.count(",") >= 2:  # a list of authors: keep the first
            source = first + " et al."
        years = re.findall(r"\b(?:19|20)\d\d\b", p.citation.reference)
        if years and years[0] not in source:
            source += f" {years[0]}"
    return device, source


@click.group("profile")
def profile() -> None:
    """Device profiles: list the shipped ones, show, validate, print the JSON Schema.

    A profile is a name of a shipped profile (see `cimsim profile list`) or a path to a YAML file.
    """


@profile.command("list")
def list_cmd() -> None:
    """List the shipped profiles: name, device, source."""
    rows: list[tuple[str, str, str]] = []
    for name in list_profiles():
        try:
            device, source = _summary(load_profile(name))
        except ProfileError as exc:
            device, source = f"INVALID: {str(exc).splitlines()[0]}", ""
        rows.append((name, device, source))
    if not rows:
        click.echo("no shipped profiles found")
        return
    w_name = max(len("NAME"), *(len(r[0]) for r in rows))
    w_dev = min(60, max(len("DEVICE"), *(len(r[1]) for r in rows)))
    click.echo(f"{'NAME':<{w_name}}  {'DEVICE':<{w_dev}}  SOURCE")
    for name, device, source in rows:
        if len(device) > w_dev:
            device = device[: w_dev - 3] + "..."
        click.echo(f"{name:<{w_name}}  {device:<{w_dev}}  {source}")


@profile.command("show")
@click.argument("name_or_file")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="override a field by dotted path, value read as YAML (e.g. --set adc.bits=6); repeatable")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of YAML")
def show_cmd(name_or_file: str, sets: tuple[str, ...], as_json: bool) -> None:
    """Print the fully resolved profile NAME_OR_FILE (inherited values and defaults included)."""
    try:
        overrides = dict(parse_override(s) for s in sets)
        p = load_profile(name_or_file, overrides or None)
    except ProfileError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(p.model_dump(mode="json"), indent=2))
    else:
        click.echo(dump_profile(p), nl=False)


@profile.command("validate")
@click.argument("files", nargs=-1, required=True)
def validate_cmd(files: tuple[str, ...]) -> None:
    """Check profile FILES; print one line per problem and exit 1 if any is invalid."""
    bad = 0
    for f in files:
        try:
            p = load_profile(f)
        except ProfileError as exc:
            bad += 1
            for line in str(exc).splitlines():
                click.echo(line, err=True)
            continue
        click.echo(f"ok: {f} ({p.name})")
    if bad:
        click.echo(f"{bad} of {len(files)} profile(s) invalid", err=True)
        raise SystemExit(1)


@profile.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of a profile file (for editor completion and checking).

    \b
    e.g.  cimsim profile schema > profile.schema.json
    and in a profile:  # yaml-language-server: $schema=profile.schema.json
    """
    schema = DeviceProfile.model_json_schema()
    props = schema.setdefault("properties", {})
    props.setdefault("extends", {"type": "string", "description": "name or path of a profile to inherit from"})
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    click.echo(json.dumps(schema, indent=2))


def register(main: click.Group) -> None:
    """Add the ``profile`` group to the top-level command."""
    main.add_command(profile)
    fit.register(profile)
