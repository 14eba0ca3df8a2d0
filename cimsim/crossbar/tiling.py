"""Tiling of an [out, in] layer onto rows x cols crossbar tiles.

Input tile k covers inputs k*rows .. min((k+1)*rows, in) - 1 and each of its columns has its own
ADC conversion; the digital partial sums of the input tiles are added.  Output tile a covers
outputs a*cols .. (a+1)*cols - 1.  Ragged edges are padded with g_min devices that receive no
input (padded rows) or are never read (padded columns); they change no result, so they are not
stored.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHUNK_WEIGHTS", "TileGrid", "row_chunks"]


@dataclass(frozen=True)
class TileGrid:
    n_out: int
    n_in: int
    rows: int
    cols: int

    @property
    def n_in_tiles(self) -> int:
        return -(-self.n_in // self.rows)

    @property
    def n_out_tiles(self) -> int:
        return -(-self.n_out // self.cols)

    def in_slice(self, k: int) -> tuple[int, int]:
        """(start, stop) of the inputs of input tile k."""
        return k * self.rows, min((k + 1) * self.rows, self.n_in)

    def block_offset(self, k: int) -> int:
        """Offset of tile k's [out, rk] block in a flat per-tile array (see drift_to_blocks)."""
        return self.n_out * k * self.rows


#: Weights per row chunk: programming and drift run chunk by chunk (each with its own child
#: generator, side by side on the thread pool).  2^17: large enough that the ~40 Python-level
#: numpy/kernel calls per chunk (and the GIL hand-offs between pool threads they cause) are a
#: small part of its time, small enough that its temporaries stay a few MiB.
CHUNK_WEIGHTS = 1 << 17


def row_chunks(n_rows: int, n_cols: int) -> list[tuple[int, int]]:
    """Fixed row ranges of about CHUNK_WEIGHTS weights (depends on the shape only)."""
    step = max(1, CHUNK_WEIGHTS // max(1, n_cols))
    return [(r, min(n_rows, r + step)) for r in range(0, n_rows, step)]
