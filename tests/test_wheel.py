"""The wheel's package list (pyproject.toml) covers every package, and the shipped profiles go in;
a plain `pip install` of the wheel (no extras) runs the README example and `cimsim demo`."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


# ------------------------------------------------------------------------ a plain `pip install .`
def _env_without_pip_config() -> dict[str, str]:
    """The environment with pip's configuration (find-links, extra indexes, constraints) cut off,
    so that nothing but what the test names can be installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pip(args: list[str], env: dict[str, str], timeout: float = 120) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _build_wheel(tmp: Path, env: dict[str, str]) -> Path:
    """cimsim's wheel from a copy of the source (no network: this environment's setuptools)."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", "*.egg-info", "build"))
    _pip(["wheel", "--no-deps", "--no-index", "--no-build-isolation", "-q", "-w", str(tmp / "wheels"), str(src)], env, 180)
    return next((tmp / "wheels").glob("cimsim-*.whl"))


def _core_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist without extras: what a plain `pip install .` installs."""
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _link_closure(reqs: list[Requirement], into: Path) -> set[str]:
    """Symlink into ``into`` every installed distribution the requirements need, transitively
    (taken from this environment: the packages, not an index); their names."""
    seen: set[str] = set()
    todo = list(reqs)
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(req.name)  # missing: PackageNotFoundError, a real failure
        site = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if (site / top).exists() and not (into / top).exists():
                (into / top).symlink_to(site / top)
        for line in dist.requires or []:
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r)
    return seen


README_EXAMPLE = re.compile(r"## Using it\n\n```python\n(.*?)```", re.S)


@pytest.mark.slow
def test_plain_pip_install_runs_the_readme_example_and_the_demo(tmp_path: Path) -> None:
    """A fresh venv and `pip install cimsim` with no extras: the README example and `cimsim demo`
    run (the digits need scikit-learn: a core dependency), without matplotlib, and the demo
    claims no plot it did not write.  No network: pip may use only the wheel built here, and
    the dependencies (and theirs) are this environment's packages, linked into the venv."""
    env = _env_without_pip_config()
    wheel = _build_wheel(tmp_path, env)
    reqs = _core_requirements(wheel)
    assert "scikit-learn" in {canonicalize_name(r.name) for r in reqs}
    deps = tmp_path / "deps"
    deps.mkdir()
    linked = _link_closure(reqs, deps)
    assert "matplotlib" not in linked and not (deps / "matplotlib").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_cimsim_dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")
    # pip resolves cimsim's dependencies (no extras) against what the venv sees, with no index
    _pip(["--python", str(py), "install", "-q", "--no-index", "--find-links", str(wheel.parent), "cimsim"], env)
    example = README_EXAMPLE.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert example is not None, "README.md: the python block under '## Using it' moved"
    code = example.group(1).replace("range(8)", "range(1)").replace("repeats=10", "repeats=2")  # the same calls, shorter
    check = "import cimsim, importlib.util\nprint('FROM', cimsim.__file__, importlib.util.find_spec('matplotlib'))\n"
    work = tmp_path / "work"  # not the checkout: cimsim must come from the venv
    work.mkdir()
    (work / "readme_example.py").write_text(check + code, encoding="utf-8")
    run_env = {**env, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}  # the demo re-uses the kernels compiled first
    for argv in ([str(py), "readme_example.py"],
                 [str(venv / "bin" / "cimsim"), "demo", "--out", "demo", "--epochs", "1", "--repeats", "2", "--times", "1s,1d",
                  "--hidden", "16", "--workers", "1"]):
        proc = subprocess.run(argv, cwd=work, env=run_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        if argv[1] == "readme_example.py":
            _, where, mpl = proc.stdout.splitlines()[0].split()
            assert where.startswith(str(venv)) and mpl == "None"  # the installed copy, no matplotlib
            assert "| time | mean (%) |" in proc.stdout
        else:
            assert "wrote demo/demo.md;" in proc.stdout and "demo.png" not in proc.stdout
            assert (work / "demo" / "demo.md").is_file() and not (work / "demo" / "demo.png").exists()
