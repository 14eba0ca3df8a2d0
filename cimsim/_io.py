"""Files cimsim writes: atomically, each with a sha256 checksum beside it.

A writer builds the whole content in memory, writes it to a temporary name in the target's
directory, flushes and ``os.fsync``\\ s it and renames it over the target (``os.replace``), so a
crash leaves either the old file or the new one, never half of one.  The checksum goes to the
sidecar ``<file>.sha256`` (``<hex>  <name>\\n``, the format of ``sha256sum``), written the same
way after the file.  A reader verifies the sidecar (:func:`read_verified`): a file whose bytes
do not hash to it was corrupted (or replaced) and is refused with :class:`StateFormatError`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import StateFormatError

__all__ = [
    "sha256_hex",
    "sidecar_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save",
    "read_checksum",
    "read_verified",
    "verify_bytes",
]

PathLike = str | os.PathLike


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sidecar_path(path: PathLike) -> Path:
    """Where the checksum of ``path`` lives: ``<path>.sha256``."""
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def _replace_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write_bytes(path: PathLike, data: bytes, *, checksum: bool = True) -> str:
    """Write ``data`` to ``path`` atomically (and its sidecar checksum); returns the sha256 hex."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    digest = sha256_hex(data)
    side = sidecar_path(p)
    if checksum:  # an old sidecar would call the new file corrupt if we died between the renames
        side.unlink(missing_ok=True)
    _replace_atomically(p, data)
    if checksum:
        _replace_atomically(side, f"{digest}  {p.name}\n".encode())
    return digest


def atomic_write_text(path: PathLike, text: str, *, checksum: bool = True) -> str:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), checksum=checksum)


def atomic_save(path: PathLike, write: Callable[[io.BytesIO], object], *, checksum: bool = True) -> str:
    """Atomic write of what ``write(buffer)`` puts in a buffer (``torch.save``, ``np.savez``, ``savefig``)."""
    buf = io.BytesIO()
    write(buf)
    return atomic_write_bytes(path, buf.getvalue(), checksum=checksum)


def read_checksum(path: PathLike) -> str | None:
    """The checksum recorded beside ``path`` (None without a sidecar)."""
    side = sidecar_path(path)
    try:
        text = side.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFormatError(f"{side}: unreadable checksum file ({exc}); delete it and the file it belongs to") from None
    digest = text.split()[0] if text.split() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise StateFormatError(f"{side}: not a sha256 checksum file (got {text[:80]!r})")
    return digest


def verify_bytes(path: PathLike, data: bytes, expected: str, *, what: str = "checksum") -> None:
    """StateFormatError naming ``path`` unless ``data`` hashes to ``expected``."""
    got = sha256_hex(data)
    if got != expected:
        raise StateFormatError(
            f"{path}: sha256 {got[:16]}... does not match its {what} {expected[:16]}...: the file is corrupted "
            f"or was replaced by another one; write it again (or restore it)"
        )


def read_verified(path: PathLike, *, required: bool = True, expected: str | None = None) -> bytes:
    """The bytes of ``path``, checked against ``expected`` (e.g. from a manifest) or else its sidecar.

    ``required``: a file without any checksum is refused (else it is read unchecked).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise StateFormatError(f"{p}: no such file") from None
    except OSError as exc:
        raise StateFormatError(f"{p}: cannot be read ({exc})") from None
    if expected is not None:
        verify_bytes(p, data, expected, what="recorded checksum")
        return data
    digest = read_checksum(p)
    if digest is None:
        if required:
            raise StateFormatError(
                f"{p}: no checksum file {sidecar_path(p).name} beside it; cimsim writes one with every file, so this file "
                f"is incomplete or not cimsim's: write it again"
            )
        return data
    verify_bytes(p, data, digest, what=f"checksum in {sidecar_path(p).name}")
    return data
