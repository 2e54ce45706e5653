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

__all__ = ["Placement", "MemoryLayout", "LAYOUTS", "SIDE_BUFFERS", "LIST_BUFFERS", "MSB_PLANE_BITS", "place",
           "msb_plane", "plane_row_bytes", "ListedRows", "listed_rows", "write_tensors", "write_lists", "side_bytes", "read_side", "read_output", "tensor_bytes",
           "burst_problems", "bytes_moved", "run_expected"]

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
    """Where a run's tensors sit; ``k`` is K's MSB plane when ``k_msb_bits < 8`` (rows of packed fields,
    :func:`msb_plane`).  The written side buffers exist by build: token and head importances (one
    little-endian word each) and row flags (one byte per query row)."""
    q: Placement
    k: Placement
    v: Placement
    o: Placement
    token_importance: Placement | None = None
    head_importance: Placement | None = None
    row_flags: Placement | None = None
    token_list: Placement | None = None
    head_list: Placement | None = None
    k_msb_bits: int = 8

    def registers(self) -> dict:
        """Register name -> value of the tensors' addresses (``Q_BASE`` … ``O_HEAD_STRIDE``, and the side
        buffers' bases and ``K_MSB_BITS`` when placed)."""
        regs = {}
        for name in ("q", "k", "v", "o"):
            t = getattr(self, name)
            regs.update({f"{name.upper()}_BASE": t.base, f"{name.upper()}_ROW_STRIDE": t.row_stride,
                         f"{name.upper()}_HEAD_STRIDE": t.head_stride})
        for name in SIDE_BUFFERS + LIST_BUFFERS:
            if getattr(self, name) is not None:
                regs[f"{name.upper()}_BASE"] = getattr(self, name).base
        if self.row_flags is not None:
            regs["K_MSB_BITS"] = self.k_msb_bits
        return regs

    def placements(self, names=None) -> list[Placement]:
        names = ("q", "k", "v", "o", *SIDE_BUFFERS, *LIST_BUFFERS) if names is None else names
        return [getattr(self, n) for n in names if getattr(self, n) is not None]

    @property
    def end(self) -> int:
        return max(t.end for t in self.placements())


#: What the DMA writes beside O, by build.
SIDE_BUFFERS = ("token_importance", "head_importance", "row_flags")
#: The lists it reads beside Q, K and V (uint16 indices).
LIST_BUFFERS = ("token_list", "head_list")
#: Bits per element of K's MSB plane the DMA reads (the full K is 8).
MSB_PLANE_BITS = (1, 2, 4, 8)


def plane_row_bytes(head_dim: int, msb_bits: int) -> int:
    """Bytes of one row of K's MSB plane: ``head_dim`` fields of ``msb_bits`` bits, packed."""
    return -(-head_dim * msb_bits // 8)


def msb_plane(k_int, msb_bits: int) -> np.ndarray:
    """K's MSB plane: the top ``msb_bits`` bits of each int8 element, element ``j`` of a row at bit
    ``j·msb_bits`` of the row (from bit 0 of its first byte); ``(H, L, plane_row_bytes)`` uint8."""
    if msb_bits not in MSB_PLANE_BITS:
        raise ValueError(f"msb_bits must be one of {MSB_PLANE_BITS}, not {msb_bits!r}")
    k = np.asarray(k_int, np.int64)
    fields = (k & 0xFF) >> (8 - msb_bits)
    per_byte = 8 // msb_bits
    heads, rows, d = k.shape
    nb = plane_row_bytes(d, msb_bits)
    padded = np.zeros((heads, rows, nb * per_byte), np.int64)
    padded[..., :d] = fields
    shifts = msb_bits * np.arange(per_byte)
    return (padded.reshape(heads, rows, nb, per_byte) << shifts).sum(axis=-1).astype(np.uint8)


def place(*, heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int, layout: str = "heads",
          base: int = 0x1000, gap: int = 0, importance_bytes: tuple[int, int] | None = None,
          row_flags: bool = False, k_msb_bits: int = 8, lists: tuple[int, int] = (0, 0),
          computed: tuple[int, int, int] | None = None) -> MemoryLayout:
    """Where Q ``(heads, q_len, d)``, K and V ``(kv_heads, kv_len, d)`` and O ``(heads, q_len, d)`` sit.

    Tensors follow each other from ``base`` with ``gap`` bytes between them (an odd ``gap`` puts rows at
    odd addresses); ``layout`` is one of :data:`LAYOUTS`.  ``importance_bytes`` (bytes of a token and of
    a head importance) places the importance buffers, ``row_flags`` the row flags, after O; with
    ``k_msb_bits < 8`` K is its MSB plane, ``[H][L][plane_row_bytes]`` after them.  ``lists`` (entries of
    the token list and of the head list, 0 for none) places the lists; ``computed`` (heads, queries, keys
    the run computes through them) sizes the side buffers (default: the tensors').
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
    side = {}
    run_heads, run_q, run_kv = computed or (heads, q_len, kv_len)
    if importance_bytes is not None:
        tb, hb = importance_bytes
        side["token_importance"] = Placement(next_at(run_kv * tb), tb, run_kv * tb, 1, run_kv, tb)
        side["head_importance"] = Placement(next_at(run_heads * hb), hb, run_heads * hb, 1, run_heads, hb)
    if row_flags:
        side["row_flags"] = Placement(next_at(run_heads * run_q), 1, run_q, run_heads, run_q, 1)
    for name, entries in zip(LIST_BUFFERS, lists):
        if entries:
            side[name] = Placement(next_at(2 * entries), 2, 2 * entries, 1, entries, 2)
    if k_msb_bits != 8:
        nb = plane_row_bytes(d, k_msb_bits) if k_msb_bits in MSB_PLANE_BITS else d
        k = Placement(next_at(kv_heads * kv_len * nb), nb, kv_len * nb, kv_heads, kv_len, nb)
    return MemoryLayout(q, k, v, o, **side, k_msb_bits=k_msb_bits)


def write_tensors(image: np.ndarray, layout: MemoryLayout, q, k, v) -> None:
    """Store int8 ``q, k, v`` into the byte array ``image`` (uint8) at their places."""
    if layout.k_msb_bits != 8:
        k = msb_plane(k, layout.k_msb_bits)
    for name, x in (("q", q), ("k", k), ("v", v)):
        t = getattr(layout, name)
        x = np.asarray(x, np.int64)
        if x.shape != (t.heads, t.rows, t.d):
            raise ValueError(f"{name} has shape {x.shape}, its placement {(t.heads, t.rows, t.d)}")
        image[t.byte_addresses()] = (x & 0xFF).astype(np.uint8)


@dataclass(frozen=True)
class ListedRows:
    """What a run computes through its lists (``LISTS`` bits): the heads, queries and keys it takes, as
    indices of the tensors; the entries of the token and head lists the DMA reads."""
    heads: np.ndarray
    queries: np.ndarray
    keys: np.ndarray
    token_entries: int
    head_entries: int

    @property
    def computed(self) -> tuple[int, int, int]:
        """(heads, queries, keys) the run computes."""
        return len(self.heads), len(self.queries), len(self.keys)

    def gather(self, q, k, v):
        """q, k, v ``(H, L, d)`` reduced to the rows and heads the run computes (lists take ungrouped heads)."""
        return (q[self.heads][:, self.queries], k[self.heads][:, self.keys], v[self.heads][:, self.keys])


def listed_rows(lists: int, token_list, head_list, *, heads: int, q_len: int, kv_len: int) -> ListedRows:
    """The rows and heads of a run with ``lists`` (bit 0: Q and O rows by ``token_list``, bit 1: K and V
    rows by it, bit 2: heads by ``head_list``); all of them without."""
    tokens = np.asarray(token_list if token_list is not None else [], np.int64)
    head_ids = np.asarray(head_list if head_list is not None else [], np.int64)
    return ListedRows(heads=head_ids if lists & 4 else np.arange(heads),
                      queries=tokens if lists & 1 else np.arange(q_len),
                      keys=tokens if lists & 2 else np.arange(kv_len),
                      token_entries=len(tokens) if lists & 3 else 0, head_entries=len(head_ids) if lists & 4 else 0)


def write_lists(image: np.ndarray, layout: MemoryLayout, tokens=None, heads=None) -> None:
    """Store the token and head lists (uint16 little-endian) at their places."""
    for name, values in (("token_list", tokens), ("head_list", heads)):
        if values is not None:
            placement = getattr(layout, name)
            image[placement.byte_addresses()] = side_bytes(values, placement)


def side_bytes(values, placement: Placement) -> np.ndarray:
    """``values`` (one per row of ``placement``, unsigned) as the little-endian bytes the DMA writes there."""
    values = np.asarray(values, np.uint64).reshape(placement.heads, placement.rows)
    return ((values[..., None] >> (8 * np.arange(placement.d, dtype=np.uint64))) & 0xFF).astype(np.uint8)


def read_side(image: np.ndarray, placement: Placement) -> np.ndarray:
    """The unsigned little-endian words of a side buffer, ``(heads, rows)``."""
    b = image[placement.byte_addresses()].astype(np.uint64)
    return (b << (8 * np.arange(placement.d, dtype=np.uint64))).sum(axis=-1).astype(np.int64)


def read_output(image: np.ndarray, layout: MemoryLayout) -> np.ndarray:
    """O ``(heads, q_len, d)`` as signed integers from the byte array ``image``."""
    return image[layout.o.byte_addresses()].astype(np.int8).astype(np.int64)


def tensor_bytes(layout: MemoryLayout, names) -> np.ndarray:
    """Sorted unique byte addresses of the named tensors and buffers placed (``"q"``, ``"k"``, ``"v"``,
    ``"o"``, :data:`SIDE_BUFFERS`)."""
    return np.unique(np.concatenate([t.byte_addresses().ravel() for t in layout.placements(names)]))


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
                kv_slots: int, gathered_keys: int | None = None, importance_bytes: tuple[int, int] | None = None,
                row_flags: bool = False, k_msb_bits: int = 8, list_entries: int = 0) -> tuple[int, int]:
    """Bytes ``(read, written)`` of a run: Q once; K and V once per K/V head when its ``kv_len``
    keys fit the ``kv_slots`` key tiles of ``cols`` keys of the buffer, else once per query block of
    ``rows`` stacked queries (K twice, in an importance run: its scan pass); O once.  A sparse run reads
    the K and V rows of the keys its tiles gather, ``gathered_keys`` per K/V head (the sum of the tiles'
    counts, :func:`attn_rtl.sim.sparse.scheduled_tiles`).  K rows are ``plane_row_bytes`` long when read
    from the MSB plane.  ``importance_bytes`` (an importance run) adds the token and head importances
    written, ``row_flags`` a byte per query row; ``list_entries`` (of the token and head lists) two bytes
    each.  The sizes are those the run computes (through its lists)."""
    group = heads // kv_heads
    blocks = -(-q_len * group // rows)
    q_bytes = heads * q_len * head_dim
    written = q_bytes + (heads * q_len if row_flags else 0)
    if importance_bytes is not None:
        written += kv_len * importance_bytes[0] + heads * importance_bytes[1]
    if gathered_keys is not None:
        return q_bytes + kv_heads * 2 * gathered_keys * head_dim, written
    k_row = plane_row_bytes(head_dim, k_msb_bits)
    if -(-kv_len // cols) <= kv_slots:
        k_passes = v_passes = 1
    else:
        v_passes = blocks
        k_passes = blocks * (2 if importance_bytes is not None else 1)
    return q_bytes + 2 * list_entries + kv_heads * kv_len * (k_passes * k_row + v_passes * head_dim), written


def run_expected(q, k, v, *, mult: int, shift: int, nm, rows: int, cols: int, kv_heads: int | None = None,
                 msb_bits: int = 8, ranked: bool = False, threshold: int | None = None,
                 pattern=None) -> tuple[np.ndarray, dict]:
    """What one run of the memory-mapped top computes over ``q`` ``(H, Lq, d)``, ``k`` and ``v``
    ``(H_kv, L, d)`` (the rows and heads it computes, gathered by its lists): O ``(H, Lq, d)`` and the
    side buffers' values by name (:data:`SIDE_BUFFERS`: an importance run's token and head importances,
    a row-flag build's flags when ``threshold`` is given).  K is floored to its ``msb_bits`` MSBs (its
    MSB plane); ``pattern`` (a :class:`~attn_rtl.sim.sparse.SparsePattern`) makes it a sparse build's run."""
    from .decoder import stack_queries, unstack_queries
    from .engine_stream import engine_output, ranked_output, row_flags
    from .progressive import msb_only
    from .sparse import allowed_mask, scheduled_tiles

    heads, kv_heads = q.shape[0], k.shape[0] if kv_heads is None else kv_heads
    side = {}
    if pattern is not None:
        shape = dict(query_len=q.shape[1], group=heads // kv_heads)
        o = engine_output(stack_queries(q, kv_heads), k, v, mult, shift, nm, cols,
                          None if pattern.is_dense else allowed_mask(pattern, k.shape[1], **shape),
                          schedule=scheduled_tiles(pattern, k.shape[1], rows, cols, **shape), rows=rows)
        return unstack_queries(o, heads), side
    k_used = msb_only(k, msb_bits, 8)
    if ranked:
        out = ranked_output(q, k_used, v, mult, shift, nm, cols)
        o = out.o
        side = {"token_importance": out.tokens, "head_importance": out.heads}
    else:
        o = unstack_queries(engine_output(stack_queries(q, kv_heads), k_used, v, mult, shift, nm, cols), heads)
    if threshold is not None:
        side["row_flags"] = row_flags(q, k_used, mult, shift, nm, cols, threshold).astype(np.int64)
    return o, side
