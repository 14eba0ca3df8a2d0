"""Data sets: scikit-learn's bundled 8x8 digits (embedded, no download) and torchvision sets
that are already on disk.  Nothing here ever downloads.

Every loader returns a :class:`Dataset` of float32 inputs and int64 labels as torch tensors,
split into train and test parts with a seeded permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError, ParameterError

__all__ = ["Dataset", "digits", "torchvision_dataset", "load_dataset", "DATASETS"]


@dataclass(frozen=True)
class Dataset:
    """Train/test tensors. ``x_*`` is float32 ``[n, *input_shape]``, ``y_*`` int64 ``[n]``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def digits(*, test_fraction: float = 0.25, seed: int = 0, image: bool = False) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes).

    Pixels (0..16) are scaled to [0, 1]. ``image=False`` gives flat ``[n, 64]`` inputs (for an MLP),
    ``image=True`` gives ``[n, 1, 8, 8]`` (for a CNN). The split is a seeded permutation.
    """
    if not 0 < test_fraction < 1:
        raise ParameterError(f"test_fraction must be in (0, 1) (got {test_fraction})")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError(
            "the digits data set needs scikit-learn (bundled data, no download): pip install scikit-learn"
        ) from exc
    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8) if image else bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    return _split("digits", x, y, 10, test_fraction, seed)


def _split(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, test_fraction: float, seed: int) -> Dataset:
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(x[tr])),
        torch.from_numpy(y[tr]),
        torch.from_numpy(np.ascontiguousarray(x[te])),
        torch.from_numpy(y[te]),
        n_classes,
    )


_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def torchvision_dataset(name: str, root: str | Path, *, flatten: bool = False) -> Dataset:
    """MNIST, Fashion-MNIST or CIFAR-10 from ``root`` where torchvision already stored it.

    Never downloads (``download=False``): a missing data set raises :class:`DataError` saying
    where it was looked for. Pixels are scaled to [0, 1]; the official train/test split is used.
    """
    key = name.lower().replace("-", "_")
    if key not in _TORCHVISION:
        raise ParameterError(f"unknown torchvision data set {name!r}; choose one of {sorted(_TORCHVISION)}")
    root = Path(root)
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:
        raise DataError(f"data set {name!r} needs torchvision installed (it is read from {root}, never downloaded)") from exc
    cls = getattr(tvd, _TORCHVISION[key])
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except RuntimeError as exc:
        raise DataError(
            f"{_TORCHVISION[key]} not found under {root} ({exc}); cimsim never downloads: "
            f"place the torchvision files there or pass the right --data-root"
        ) from exc

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(ds.data, dtype=np.float32) / 255.0
        x = x.reshape(len(x), 1, *x.shape[1:]) if x.ndim == 3 else np.transpose(x, (0, 3, 1, 2))
        if flatten:
            x = x.reshape(len(x), -1)
        return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)

    xtr, ytr = arrays(train)
    xte, yte = arrays(test)
    return Dataset(key, torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte), 10)


DATASETS = ("digits", *_TORCHVISION)


def load_dataset(name: str, *, root: str | Path | None = None, image: bool = False, seed: int = 0) -> Dataset:
    """By name: ``digits`` (embedded) or a torchvision set already under ``root``."""
    key = name.lower().replace("-", "_")
    if key == "digits":
        return digits(seed=seed, image=image)
    if root is None:
        raise ParameterError(f"data set {name!r} is read from disk: give its root directory (--data-root)")
    return torchvision_dataset(key, root, flatten=not image)
