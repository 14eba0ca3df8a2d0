"""Built-in float models for the examples, the CLI and the tests (convert them with ``cimsim.nn.convert``).

* :func:`mlp`: ``in -> hidden... -> n_classes`` with ReLU (default 64-256-256-10 for 8x8 digits).
* :func:`lenet`: a LeNet-style CNN for 8x8 (digits), 28x28 (MNIST) or 32x32 (CIFAR-10) inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .errors import ParameterError

__all__ = ["mlp", "lenet"]


def _pos_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ParameterError(f"{name} must be a positive int (got {v!r})")
    return v


def mlp(in_features: int = 64, hidden: Sequence[int] = (256, 256), n_classes: int = 10, *,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Flatten -> Linear(in, h1) -> act -> ... -> Linear(h_last, n_classes)`` (logits).

    The leading ``Flatten`` lets image-shaped inputs (``[n, 1, 8, 8]``) in unchanged; the Linear
    layers sit at indices 1, 3, 5, ... of the Sequential.
    """
    _pos_int("in_features", in_features)
    _pos_int("n_classes", n_classes)
    sizes = [in_features] + [_pos_int("hidden size", h) for h in hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-1], n_classes))
    return nn.Sequential(*layers)


def lenet(in_channels: int = 1, n_classes: int = 10, *, input_size: int = 28,
          channels: Sequence[int] | None = None, hidden: Sequence[int] | None = None) -> nn.Sequential:
    """LeNet-style CNN: two ``conv -> ReLU -> 2x2 max-pool`` blocks, then an MLP head.

    ``input_size`` is the (square) image side: 28 or 32 use LeNet-5's 5x5 kernels (padding 2 for
    28, so both end at 16 x 5 x 5 features) with channels (6, 16) and hidden (120, 84); 8 (the
    embedded digits) uses 3x3 kernels with padding 1, channels (8, 16) and hidden (64,), giving
    16 x 2 x 2 features. Other sizes >= 8 work too (features are computed from the arithmetic).
    """
    _pos_int("in_channels", in_channels)
    _pos_int("n_classes", n_classes)
    _pos_int("input_size", input_size)
    if input_size < 8:
        raise ParameterError(f"input_size must be >= 8 (got {input_size})")
    small = input_size < 16
    k = 3 if small else 5
    pad1 = 1 if small else (2 if input_size < 32 else 0)
    pad2 = 1 if small else 0
    c1, c2 = channels if channels is not None else ((8, 16) if small else (6, 16))
    hid = list(hidden) if hidden is not None else ([64] if small else [120, 84])
    s = input_size + 2 * pad1 - k + 1
    s //= 2
    s = s + 2 * pad2 - k + 1
    s //= 2
    if s < 1:
        raise ParameterError(f"input_size={input_size} is too small for this LeNet")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, c1, k, padding=pad1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, k, padding=pad2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    ]
    sizes = [c2 * s * s] + hid
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_classes))
    return nn.Sequential(*layers)
