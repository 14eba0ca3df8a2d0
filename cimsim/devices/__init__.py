"""Device laws (encoded for the kernels) and the random draws of the crossbar path.

The per-device physics (levels, variability, faults, programming noise, drift exponents, drift,
1/f noise) is implemented in :mod:`cimsim.kernels` (equations in the kernel docstrings); this
package turns profile sections into kernel inputs.
"""

from .laws import encode_xfunction
from .random import normals, uniforms

__all__ = ["encode_xfunction", "normals", "uniforms"]
