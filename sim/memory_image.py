"""Host-side model of the memory-mapped top: where tensors sit in memory, their registers, and O read back.

A driver (or a test) places Q, K, V and O in memory with a base address, a
row stride and a head stride per tensor (docs/system.md): :func:`place`
lays them out as a user's framework would, :func:`write_tensors` fills a
memory image, :func:`read_output` takes O back out of it.  The byte sets of
every tensor give the memory-safety checks their reference: what the DMA may
read and what it may write.  No simulator is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Placement", "MemoryLayout", "LAYOUTS", "place", "write_tensors", "read_output", "tensor_bytes",
           "burst_problems", "bytes_moved"]

#: ``heads``: each tensor ``[H][L][d]`` on its own; ``tokens``: each ``[L][H·d]`` (a projection's output);
#: ``fused``: Q, K and V interleaved per token in one ``[L][(H + 2·H_kv)·d]`` buffer (a fused QKV projection).
LAYOUTS = ("heads", "tokens", "fused")


@dataclass(frozen=True)
class Placement:
    """One tensor of ``heads`` heads of ``rows`` rows of ``d`` bytes: row ``i`` of head ``h`` at
    ``base + h·head_stride + i·row_stride``."""
    base: int
    row_stride: int
    head_stride: int
    heads: int
    rows: int
    d: int

    def row_addresses(self) -> np.ndarray:
        """``(heads, rows)`` byte addresses of the rows."""
        h, i = np.meshgrid(np.arange(self.heads), np.arange(self.rows), indexing="ij")
        return self.base + h * self.head_stride + i * self.row_stride

    def byte_addresses(self) -> np.ndarray:
        """``(heads, rows, d)`` byte address of every element."""
        return self.row_addresses()[..., None] + np.arange(self.d)

    @property
    def end(self) -> int:
        """One past the highest byte of the tensor."""
        return int(self.byte_addresses().max()) + 1


@dataclass(frozen=True)
class MemoryLayout:
    q: Placement
    k: Placement
    v: Placement
    o: Placement

    def registers(self) -> dict:
        """Register name -> value of the tensors' addresses (``Q_BASE`` … ``O_HEAD_STRIDE``)."""
        regs = {}
        for name in ("q", "k", "v", "o"):
            t = getattr(self, name)
            regs.update({f"{name.upper()}_BASE": t.base, f"{name.upper()}_ROW_STRIDE": t.row_stride,
                         f"{name.upper()}_HEAD_STRIDE": t.head_stride})
        return regs

    @property
    def end(self) -> int:
        return max(t.end for t in (self.q, self.k, self.v, self.o))


def place(*, heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int, layout: str = "heads",
          base: int = 0x1000, gap: int = 0) -> MemoryLayout:
    """Where Q ``(heads, q_len, d)``, K and V ``(kv_heads, kv_len, d)`` and O ``(heads, q_len, d)`` sit.

    Tensors follow each other from ``base`` with ``gap`` bytes between them (an odd ``gap`` puts rows at
    odd addresses); ``layout`` is one of :data:`LAYOUTS`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    d = head_dim
    at = base

    def next_at(size: int) -> int:
        nonlocal at
        start, at = at, at + size + gap
        return start

    if layout == "heads":
        q = Placement(next_at(heads * q_len * d), d, q_len * d, heads, q_len, d)
        k = Placement(next_at(kv_heads * kv_len * d), d, kv_len * d, kv_heads, kv_len, d)
        v = Placement(next_at(kv_heads * kv_len * d), d, kv_len * d, kv_heads, kv_len, d)
    elif layout == "tokens":
        q = Placement(next_at(q_len * heads * d), heads * d, d, heads, q_len, d)
        k = Placement(next_at(kv_len * kv_heads * d), kv_heads * d, d, kv_heads, kv_len, d)
        v = Placement(next_at(kv_len * kv_heads * d), kv_heads * d, d, kv_heads, kv_len, d)
    else:
        if q_len != kv_len:
            raise ValueError(f"a fused QKV buffer holds as many queries as keys, not {q_len} and {kv_len}")
        width = (heads + 2 * kv_heads) * d
        start = next_at(kv_len * width)
        q = Placement(start, width, d, heads, q_len, d)
        k = Placement(start + heads * d, width, d, kv_heads, kv_len, d)
        v = Placement(start + (heads + kv_heads) * d, width, d, kv_heads, kv_len, d)
    o = Placement(next_at(q_len * heads * d), heads * d if layout != "heads" else d,
                  d if layout != "heads" else q_len * d, heads, q_len, d)
    return MemoryLayout(q, k, v, o)


def write_tensors(image: np.ndarray, layout: MemoryLayout, q, k, v) -> None:
    """Store int8 ``q, k, v`` into the byte array ``image`` (uint8) at their places."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        t = getattr(layout, name)
        x = np.asarray(x, np.int64)
        if x.shape != (t.heads, t.rows, t.d):
            raise ValueError(f"{name} has shape {x.shape}, its placement {(t.heads, t.rows, t.d)}")
        image[t.byte_addresses()] = (x & 0xFF).astype(np.uint8)


def read_output(image: np.ndarray, layout: MemoryLayout) -> np.ndarray:
    """O ``(heads, q_len, d)`` as signed integers from the byte array ``image``."""
    return image[layout.o.byte_addresses()].astype(np.int8).astype(np.int64)


def tensor_bytes(layout: MemoryLayout, names) -> np.ndarray:
    """Sorted unique byte addresses of the named tensors (``"q"``, ``"k"``, ``"v"``, ``"o"``)."""
    return np.unique(np.concatenate([getattr(layout, n).byte_addresses().ravel() for n in names]))


def burst_problems(addr: int, beats: int, bus_bytes: int, allowed_words: set) -> list[str]:
    """What is wrong with an INCR burst of ``beats`` bus words from ``addr``: more than 256 beats, a 4 KB
    boundary crossed, an unaligned address, or a bus word holding none of the allowed bytes
    (``allowed_words``: the indices ``byte // bus_bytes`` of the bytes the registers describe)."""
    problems = []
    if beats > 256:
        problems.append(f"burst of {beats} beats at 0x{addr:x}")
    if addr % bus_bytes:
        problems.append(f"burst at 0x{addr:x} not aligned to the {bus_bytes}-byte bus")
    if addr // 4096 != (addr + beats * bus_bytes - 1) // 4096:
        problems.append(f"burst at 0x{addr:x} of {beats} beats crosses a 4 KB boundary")
    stray = [addr // bus_bytes + b for b in range(beats) if addr // bus_bytes + b not in allowed_words]
    if stray:
        problems.append(f"burst at 0x{addr:x} of {beats} beats touches words outside the tensors "
                        f"(first at 0x{stray[0] * bus_bytes:x})")
    return problems


def bytes_moved(*, heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int, rows: int, cols: int,
                kv_slots: int, gathered_keys: int | None = None) -> tuple[int, int]:
    """Tensor bytes ``(read, written)`` of a run: Q once; K and V once per K/V head when its ``kv_len``
    keys fit the ``kv_slots`` key tiles of ``cols`` keys of the buffer, else once per query block of
    ``rows`` stacked queries; O once.  A sparse run reads the K and V rows of the keys its tiles gather,
    ``gathered_keys`` per K/V head (the sum of the tiles' counts, :func:`attn_rtl.sim.sparse.scheduled_tiles`)."""
    group = heads // kv_heads
    blocks = -(-q_len * group // rows)
    q_bytes = heads * q_len * head_dim
    if gathered_keys is not None:
        return q_bytes + kv_heads * 2 * gathered_keys * head_dim, q_bytes
    passes = 1 if -(-kv_len // cols) <= kv_slots else blocks
    return q_bytes + kv_heads * passes * 2 * kv_len * head_dim, q_bytes
