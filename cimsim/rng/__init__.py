"""Seeds and generators: every random draw of cimsim starts here.

Every draw comes from a ``numpy.random.Generator`` (or a ``torch.Generator``) handed in by the
caller; nothing uses global random state and no Numba kernel draws numbers.
:mod:`.generators` turns seeds into generators, :mod:`.seeds` holds every seed derivation,
:mod:`.seedseq` computes numpy's ``SeedSequence`` hash compiled (the same Generators, faster).
"""

from .generators import SeedLike, as_generator, child_generators, torch_generator
from .seeds import (
    SEED_HIGH,
    check_seed,
    chip_seeds,
    compensation_generator,
    group_seed,
    layer_seed,
    read_generator,
    spawn_seeds,
    split_seed,
)

__all__ = [
    "SeedLike",
    "as_generator",
    "child_generators",
    "torch_generator",
    "SEED_HIGH",
    "check_seed",
    "split_seed",
    "spawn_seeds",
    "chip_seeds",
    "layer_seed",
    "group_seed",
    "read_generator",
    "compensation_generator",
]
