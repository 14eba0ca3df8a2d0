"""``cimsim profile ...``: list, show, validate and describe device profiles, print their JSON Schema
and start a derived one (``init``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
import yaml

from ..errors import ProfileError
from ..profiles import DeviceProfile, dump_profile, list_profiles, load_profile, parse_override
from ..profiles.editor_schema import profile_json_schema
from ..profiles.loader import _looks_like_path, profile_path
from ..profiles.provenance import PROVENANCE_FIELDS
from . import fit

__all__ = ["SCHEMA_FILE", "register", "starter_profile"]

SCHEMA_FILE = "cimsim-profile.schema.json"
"""Default file name of the JSON Schema that ``cimsim profile init`` points editors to."""


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
    """Device profiles: list the shipped ones, show, validate, print the JSON Schema, start one.

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
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="write to this file instead of printing")
def schema_cmd(output: str | None) -> None:
    """Print the JSON Schema of a profile file (for editor completion and checking).

    It accepts complete profiles and derived files (extends:). See docs/profiles.md, "Editor set-up".

    \b
    e.g.  cimsim profile schema -o cimsim-profile.schema.json
    and as a profile's first line:  # yaml-language-server: $schema=cimsim-profile.schema.json
    """
    text = json.dumps(profile_json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    _write(Path(output), text, force=True)
    click.echo(f"wrote {output}")


def _write(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; give another -o FILE or --force to overwrite it")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path} ({exc.strerror or exc})") from None


def _commented(section: str, value: object, max_lines: int = 30) -> list[str]:
    """The parent's ``section`` as commented-out YAML (a long one only named)."""
    lines = yaml.safe_dump({section: value}, sort_keys=False, allow_unicode=True, width=100).splitlines()
    if len(lines) > max_lines:
        return [f"# {section}: ...  ({len(lines)} lines: see cimsim profile show)"]
    return [f"# {line}" for line in lines]


_PLAIN = re.compile(r"[A-Za-z0-9_./\-]+")  # written unquoted in YAML


def starter_profile(parent: DeviceProfile, extends: str, name: str, schema: str) -> str:
    """A derived profile file over ``parent`` (given to ``extends:`` as ``extends``), every
    inherited section shown commented out, that loads as is."""
    data = parent.model_dump(mode="json")
    out = [
        f"# yaml-language-server: $schema={schema}",
        f"# A device profile derived from {parent.name}: uncomment and change what differs from it; every field",
        "# left out is inherited. Check it with: cimsim profile validate THIS_FILE; reference: docs/profiles.md.",
        f"extends: {extends if _PLAIN.fullmatch(extends) else json.dumps(extends)}",
        f"name: {name}",
        "description: >-",
        f"  Derived from {parent.name}: say what this device is and what differs.",
        f"# Without a citation of your own, the citation reads 'derived from {parent.name} (its source);",
        "# FIELDS changed, not from that source'.",
        "# citation:",
        "#   reference: authors, title, venue, year",
        "#   doi: null",
        "# assumptions:",
        "#   - what is not from your source, and what the model leaves out",
    ]
    for section, value in data.items():
        if section not in PROVENANCE_FIELDS:
            out += _commented(section, value)
    return "\n".join(out) + "\n"


@profile.command("init")
@click.option("--extends", "extends", required=True, metavar="NAME_OR_FILE", help="the profile to derive from (cimsim profile list)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="write the profile here (and the JSON Schema beside it, if missing); default: print it")
@click.option("--schema", "schema_path", default=SCHEMA_FILE, show_default=True,
              help="schema path or URL for the yaml-language-server header")
@click.option("--force", is_flag=True, help="overwrite an existing -o FILE")
def init_cmd(extends: str, output: str | None, schema_path: str, force: bool) -> None:
    """Start a derived profile: extends: NAME, with the parent's sections commented out to edit.

    \b
    e.g.  cimsim profile init --extends fefet -o my_fefet.yaml
    """
    try:
        parent = load_profile(extends)
    except ProfileError as exc:
        _fail(exc)
        return
    target = extends
    if _looks_like_path(extends):  # extends: resolves against the new file's folder
        target = os.path.relpath(profile_path(extends).resolve(), Path(output or ".").resolve().parent)
    stem = Path(output).stem if output else f"my_{parent.name}"
    name = stem if re.fullmatch(r"[A-Za-z0-9_.\-]+", stem) else f"my_{parent.name}"
    text = starter_profile(parent, target, name, schema_path)
    if output is None:
        click.echo(text, nl=False)
        return
    path = Path(output)
    _write(path, text, force)
    click.echo(f"wrote {path} (extends {parent.name}); check it with: cimsim profile validate {path}")
    schema_file = path.parent / schema_path
    if "://" not in schema_path and not schema_file.exists():
        _write(schema_file, json.dumps(profile_json_schema(), indent=2) + "\n", force=False)
        click.echo(f"wrote {schema_file} (the JSON Schema the file's first line points editors to)")


def register(main: click.Group) -> None:
    """Add the ``profile`` group to the top-level command."""
    main.add_command(profile)
    fit.register(profile)
