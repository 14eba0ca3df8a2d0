"""Package-level invariants: the public API, and imports that only follow the data flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cimsim

PKG = Path(cimsim.__file__).parent

# profiles -> devices/peripherals/kernels -> crossbar -> nn -> evaluation -> runs/cli (DESIGN.md §1)
LAYER = {
    "errors": 0,
    "rng": 0,
    "times": 0,
    "_threads": 0,
    "data": 0,
    "profiles": 1,
    "devices": 2,
    "peripherals": 2,
    "kernels": 2,
    "crossbar": 3,
    "nn": 4,
    "models": 5,
    "evaluation": 6,
    "runs": 7,
    "cli": 7,
    "__init__": 8,
    "__main__": 8,
}


def _top(module_path: Path) -> str:
    rel = module_path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imported_tops(path: Path) -> set[str]:
    """Top-level cimsim sub-packages a module imports (relative or absolute, anywhere in it)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own_depth = len(path.relative_to(PKG).parts) - 1  # 0 for cimsim/x.py, 1 for cimsim/pkg/x.py
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up < own_depth:
                    continue  # import inside the module's own sub-package
                parts = (node.module or "").split(".")
                if parts[0]:
                    found.add(parts[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("cimsim."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cimsim."):
                    found.add(alias.name.split(".")[1])
    return {f for f in found if f in LAYER}


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_go_down_the_data_flow(path: Path) -> None:
    me = _top(path)
    for other in _imported_tops(path):
        assert LAYER[other] <= LAYER[me], f"{path.relative_to(PKG)} ({me}) imports {other}, a higher layer"


def test_public_api_is_complete_and_importable() -> None:
    assert len(set(cimsim.__all__)) == len(cimsim.__all__)
    for name in cimsim.__all__:
        assert hasattr(cimsim, name), name
    for err in ("ProfileError", "ShapeError", "NonFiniteError", "ParameterError", "StateFormatError"):
        cls = getattr(cimsim, err)
        assert issubclass(cls, cimsim.CimsimError) and issubclass(cls, ValueError)


def test_array_design_example_designs_are_valid_profiles() -> None:
    """examples/array_design.py's design table: every (profile, overrides) still validates."""
    import importlib.util

    from cimsim.profiles import load_profile

    path = PKG.parent / "examples" / "array_design.py"
    spec = importlib.util.spec_from_file_location("array_design", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert len(mod.DESIGNS) >= 10
    for _, name, overrides in mod.DESIGNS:
        load_profile(name, overrides=overrides)


def test_sequence_models_example_builds_and_converts() -> None:
    """examples/sequence_models.py: its model still converts layer by layer (not run here: 13 s)."""
    import importlib.util

    from cimsim.nn import analog_layers, convert

    spec = importlib.util.spec_from_file_location("sequence_models", PKG.parent / "examples" / "sequence_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kinds = {type(m).__name__ for _, m in analog_layers(convert(mod.RowReader(), "pcm"))}
    assert kinds == {"AnalogLinear", "AnalogMultiheadAttention", "AnalogGRU"}
