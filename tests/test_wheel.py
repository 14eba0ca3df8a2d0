"""The wheel's package list (pyproject.toml) covers every package, and the shipped profiles go in."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_packages_cover_the_source_tree_and_the_profiles() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cimsim").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == {"cimsim._device_models"}
    src = ROOT / cfg["package-dir"]["cimsim._device_models"]
    assert src == ROOT / "device_models" and len(list(src.glob("*.yaml"))) >= 5
    assert cfg["package-data"]["cimsim._device_models"] == ["*.yaml"]


def test_profiles_folder_falls_back_to_the_installed_copy(tmp_path, monkeypatch) -> None:
    """Outside a checkout (a wheel install), MODELS_DIR is cimsim/_device_models."""
    from cimsim.profiles import loader

    fake = tmp_path / "site" / "cimsim" / "profiles" / "loader.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("")
    monkeypatch.setattr(loader, "__file__", str(fake))
    assert loader._models_dir() == tmp_path / "site" / "cimsim" / "_device_models"
