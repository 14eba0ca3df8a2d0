"""Package-level invariants: the public API and the examples' use of it (layering: test_layering.py)."""

from __future__ import annotations

from pathlib import Path


import cimsim

PKG = Path(cimsim.__file__).parent

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


def test_migrating_guide_examples_run() -> None:
    """docs/migrating.md: every python block runs (in order, one namespace), including the check
    that the int8 profile computes torchao's int8 arithmetic."""
    import re

    text = (PKG.parent / "docs" / "migrating.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    for a in ("convert_to_analog", "InferenceRPUConfig", "PCMLikeNoiseModel", "drift_analog_weights",
              "GlobalDriftCompensation", "quantize_"):
        assert a in text, a
    namespace: dict = {}
    for code in blocks:
        assert not re.search(r"^\s*(import|from)\s+(aihwkit|torchao)", code, re.M)  # runs without them
        exec(compile(code, "docs/migrating.md", "exec"), namespace)  # noqa: S102 - the repository's own docs
    assert namespace["report"].repeats == 3 and namespace["int8"].conductance.n_levels == 128
