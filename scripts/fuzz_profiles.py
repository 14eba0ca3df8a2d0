"""Physics fuzzing: extreme numbers in valid profiles must give finite results or a named error.

Each case takes a shipped profile, replaces one to three of its numeric fields with an extreme
value (0, a power of ten from 1e-320 to 1e308, float32's limits, a sign flip, a scaled copy),
and loads it.  A profile that loads is then programmed, drifted, read (``tile_mvm``) and trained
one step (an ``AnalogLinear`` in hardware mode, forward and backward).  Every outcome must be
one of: finite numbers, or a :class:`~cimsim.errors.CimsimError` (a ``NonFiniteError`` naming
the stage, a ``ProfileError`` naming the field, a ``ParameterError``).  A NaN/Inf that comes back
silently, or any other exception, is a failure.

    python scripts/fuzz_profiles.py --cases 10000 [--seed 0]

prints the counts (loaded, finite, named errors by class, failures) and the first failures.
``tests/profiles/test_profile_physics_fuzz.py`` runs a bounded number of cases in CI.
"""

from __future__ import annotations

import argparse
import collections
import copy
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from cimsim.errors import CimsimError, ProfileError  # noqa: E402
from cimsim.profiles import list_profiles, profile_from_dict  # noqa: E402
from cimsim.profiles.loader import MODELS_DIR  # noqa: E402

SHIPPED: dict[str, dict[str, Any]] = {
    n: yaml.safe_load((MODELS_DIR / f"{n}.yaml").read_text(encoding="utf-8")) for n in list_profiles()
}
EXTREMES = [0.0, -0.0, 1e-320, 5e-324, 1e-310, 1e-46, 1e-38, 1e-12, 1e-6, 1e6, 1e12, 3.4e38, 3.5e38, 1e39,
            1e100, 1e302, 1e308, -1e39, -1.0, 2.0 ** 31, 2 ** 63]
TIMES_S = [0.0, 1e-9, 1.0, 3600.0, 3.15e7, 1e12, 4.3e17]


def _numeric_paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _numeric_paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _numeric_paths(v, (*prefix, i))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out.append(prefix)
    return out


def mutate(rng: np.random.Generator) -> tuple[str, dict[str, Any], list[str]]:
    """A shipped profile's dict with 1-3 numeric fields set to extreme values, and what changed."""
    name = str(rng.choice(sorted(SHIPPED)))
    data = copy.deepcopy(SHIPPED[name])
    paths = _numeric_paths(data)
    changes: list[str] = []
    for _ in range(int(rng.integers(1, 4))):
        if not paths:
            break
        path = paths[int(rng.integers(len(paths)))]
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        old = parent[path[-1]]
        pick = rng.random()
        if pick < 0.4:
            new: Any = EXTREMES[int(rng.integers(len(EXTREMES)))]
        elif pick < 0.6:
            new = old * 10.0 ** int(rng.integers(-40, 41))
        elif pick < 0.8:
            new = old * 10.0 ** float(rng.uniform(-6, 6))
        elif pick < 0.9:
            new = -old
        else:
            new = int(rng.integers(-2, 70))
        if isinstance(old, int) and isinstance(new, float) and math.isfinite(new) and new == int(new) and rng.random() < 0.5:
            new = int(new)
        parent[path[-1]] = new
        changes.append(f"{'.'.join(map(str, path))}: {old!r} -> {new!r}")
    return name, data, changes


@dataclass
class Outcome:
    kind: str  # "rejected" (ProfileError), "finite", "named" (another CimsimError), "silent", "raw"
    detail: str = ""
    errors: dict[str, int] = field(default_factory=dict)


def _finite(*arrays: Any) -> bool:
    for a in arrays:
        a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        if not np.isfinite(a).all():
            return False
    return True


def run_case(seed: int, n_out: int = 12, n_in: int = 20) -> tuple[Outcome, str, list[str]]:
    """Mutate, load, then program/drift/read and train one step; the outcome and what changed."""
    from cimsim import AnalogLinear, program_matrix, tile_mvm

    rng = np.random.default_rng(seed)
    name, data, changes = mutate(rng)
    try:
        profile = profile_from_dict(data, source="fuzz.yaml")
    except ProfileError:
        return Outcome("rejected"), name, changes
    t_s = float(TIMES_S[int(rng.integers(len(TIMES_S)))])
    W = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.3
    x = rng.standard_normal((3, n_in)).astype(np.float32)
    named: dict[str, int] = {}
    stage = "program"
    try:
        state = program_matrix(W, profile, rng=seed)
        stage = "read"
        y = tile_mvm(x, state, t_s=t_s, rng=seed + 1)
        if not _finite(y):
            return Outcome("silent", f"tile_mvm(t_s={t_s}) returned non-finite values"), name, changes
    except CimsimError as exc:
        named[f"{stage}:{type(exc).__name__}"] = 1
    except Exception as exc:  # noqa: BLE001 - the point is to catch what is not named
        return Outcome("raw", f"{stage}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"), name, changes
    stage = "train"
    try:
        torch.manual_seed(0)  # only the float init of the test layer; the chip draws from its seed
        layer = AnalogLinear(n_in, n_out, profile=profile, mode="hardware", seed=seed)
        xt = torch.from_numpy(x).requires_grad_(True)
        out = layer(xt)
        out.square().mean().backward()
        if not _finite(out, layer.weight.grad, xt.grad):
            return Outcome("silent", "AnalogLinear forward/backward returned non-finite values"), name, changes
    except CimsimError as exc:
        named[f"{stage}:{type(exc).__name__}"] = 1
    except Exception as exc:  # noqa: BLE001
        return Outcome("raw", f"{stage}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"), name, changes
    return Outcome("named" if named else "finite", errors=named), name, changes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=10, help="failures to print in full")
    args = ap.parse_args(argv)
    counts: collections.Counter[str] = collections.Counter()
    named: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    t0 = time.perf_counter()
    for i in range(args.cases):
        out, name, changes = run_case(args.seed * 1_000_003 + i)
        counts[out.kind] += 1
        named.update(out.errors)
        if out.kind in ("silent", "raw"):
            failures.append(f"case {i} ({name}; {'; '.join(changes)}): {out.kind}: {out.detail}")
    dt = time.perf_counter() - t0
    loaded = args.cases - counts["rejected"]
    print(f"{args.cases} cases in {dt:.0f} s: {counts['rejected']} rejected by the schema (ProfileError), "
          f"{loaded} loaded: {counts['finite']} finite throughout, {counts['named']} with a named error, "
          f"{counts['silent']} silent NaN/Inf, {counts['raw']} raw exceptions")
    for k, v in sorted(named.items()):
        print(f"  named {k}: {v}")
    for f in failures[: args.show]:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
