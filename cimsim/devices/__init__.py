"""The random draws of the crossbar path (exact Gaussians from the caller's Generator).

The per-device physics (levels, variability, faults, programming noise, drift exponents, drift,
1/f noise) is implemented in :mod:`cimsim.kernels` (equations in the kernel docstrings); the
device laws of x = G/g_max are the profile's XFunctions (:mod:`cimsim.profiles.functions`),
evaluated vectorised by :mod:`cimsim.crossbar`.
"""

from .random import normals, uniforms

__all__ = ["normals", "uniforms"]
