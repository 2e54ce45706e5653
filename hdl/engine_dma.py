"""The engine's DMA: Q, K, V read from tensors in memory and sent in the engine's order, O written back."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, int_in_range, positive_int

from .axi_burst import bus_bytes_of
from .row_reader import RowReader
from .row_writer import RowWriter

__all__ = ["EngineDMA", "TENSORS", "kv_slots"]

#: The tensors in memory, each with a base address, a row stride and a head stride in bytes.
TENSORS = ("q", "k", "v", "o")
#: Tile slots of the K/V buffer at least: the reads of a few tiles in flight hide the memory's latency.
MIN_KV_SLOTS = 4
#: Bits of the tile and block counters compared between the fetch and the emit sides (differences stay small).
_COUNT_BITS = 16
_Q, _K, _V = 0, 1, 2


def kv_slots(*, cols: int, kv_buffer_keys: int, prob_tiles: int) -> int:
    """Key tiles the K/V buffer holds: ``kv_buffer_keys / cols``, at least enough to keep reads ahead."""
    return max(kv_buffer_keys // cols, MIN_KV_SLOTS, prob_tiles + 2)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class _Bank:
    """One bank of a staging buffer: a simple dual-port memory of ``words`` words (write, synchronous read)."""

    def __init__(self, m: Module, name: str, width: int, depth: int):
        m.submodules[name] = mem = memory.Memory(shape=unsigned(width), depth=depth, init=[])
        self.write = mem.write_port()
        self.read = mem.read_port(domain="sync", transparent_for=())


class EngineDMA(wiring.Component):
    """Feeds :class:`~attn_rtl.hdl.engine.AttentionEngine` from int8 tensors in memory and writes its O back.

    Q, K, V and O live in memory as rows of ``head_dim`` bytes: row ``i`` of
    head ``h`` of tensor ``X`` at ``X_base + h·X_head_stride + i·X_row_stride``
    (any byte address and strides: ``[H][L][d]`` and the ``[L][H·d]`` of a
    fused projection, Q, K and V interleaved in one buffer, all work).  K and
    V have ``kv_heads`` heads of ``seq_len`` rows (a KV cache), Q and O
    ``heads`` heads of ``query_len`` rows.  Per K/V head, the group's queries
    are stacked position-major as the engine takes them (docs/engine.md,
    *Decoder attention*).

    Rows are read through one AXI4 read master
    (:class:`~attn_rtl.hdl.row_reader.RowReader`) into staging buffers of
    ``cols``-byte words, one bank per lane, from which the engine's beats are
    read: Q as columns of a block (two block slots), K as columns of a key
    tile and V as row pieces, from a ring of key-tile slots (the **K/V
    buffer**, ``kv_buffer_keys`` keys of ``max_head_dim`` bytes each of K and
    V).  When a head's ``seq_len`` keys fit the buffer, its K and V are read
    from memory once and replayed for every query block; otherwise each
    block's tiles are read again as they are needed.  O beats are gathered per
    block (two slots) and written row by row through one AXI4 write master
    (:class:`~attn_rtl.hdl.row_writer.RowWriter`).  ``bytes_read`` and
    ``bytes_written`` count the tensors' bytes moved by the run.

    Parameters
    ----------
    rows, cols, max_seq_len, max_heads, max_head_dim, prob_tiles, data_width_bits :
        The engine's (``data_width_bits`` is its lane width, 8).
    addr_width : int
        Byte address bits of the AXI4 master.
    bus_width : int
        AXI4 data bits: 32, 64, 128, 256 or 512.
    kv_buffer_keys : int
        Keys of K and V the on-chip buffer holds (0: the smallest ring, ``kv_slots`` tiles).
    sparse : bool
        A sparse engine: K and V rows of exactly the keys ``kv_index`` names, tile by tile (gathered
        per query block, never replayed).
    outstanding : int
        Rows in flight on each AXI4 direction.

    Ports
    -----
    start : In(1)
        Takes the runtime values and addresses (with the engine's ``start``).
    launch : In(1), group_size : In
        The engine's ``launched`` and ``group_size``: the run begins.
    seq_len, heads, kv_heads, query_len, head_dim : In
        As the engine's (0 for ``kv_heads``/``query_len`` stands for ``heads``/``seq_len``).
    q_base, q_row_stride, q_head_stride, … o_head_stride : In(addr_width)
    q, k, v : Out(stream) ; o : In(stream)
        To and from the engine.
    kv_index : In(stream)
        Only ``sparse``: the engine's key tiles (:class:`~attn_rtl.hdl.engine.AttentionEngine`).
    ar, r, aw, w, b : the AXI4 channels (:class:`RowReader`, :class:`RowWriter`).
    busy, done, read_error, write_error : Out(1)
    bytes_read, bytes_written : Out(32)
    """

    def __init__(self, *, rows: int, cols: int, max_seq_len: int, max_heads: int, max_head_dim: int,
                 prob_tiles: int = 3, lane_width: int = 8, addr_width: int = 32, bus_width: int = 64,
                 kv_buffer_keys: int = 0, outstanding: int = 8, sparse: bool = False):
        self._MustUse__silence = True   # a refused build is never elaborated (and a built one is the top's)
        self.rows, self.cols = positive_int("rows", rows), positive_int("cols", cols)
        self.max_seq_len = positive_int("max_seq_len", max_seq_len)
        self.max_heads = positive_int("max_heads", max_heads)
        self.max_head_dim = positive_int("max_head_dim", max_head_dim)
        if lane_width != 8:
            raise ValueError(f"the memory-mapped top moves int8 tensors: data_width must be 8, not {lane_width!r}")
        self.addr_width = int_in_range("addr_width", addr_width, 12, 64)
        self.bus_bytes = bus_bytes_of(bus_width)
        self.bus_width = bus_width
        self.kv_buffer_keys = int_in_range("kv_buffer_keys", kv_buffer_keys, 0, 1 << 20)
        if kv_buffer_keys % cols:
            raise ValueError(f"kv_buffer_keys must be a multiple of cols ({cols}), not {kv_buffer_keys}")
        self.outstanding = positive_int("outstanding", outstanding, at_most=64)
        self.sparse = boolean("sparse", sparse)
        self.slots = kv_slots(cols=cols, kv_buffer_keys=kv_buffer_keys, prob_tiles=prob_tiles)
        self.words_per_row = -(-max_head_dim // cols)
        self.word_stride = _pow2_at_least(self.words_per_row)
        A = addr_width
        members = {"start": In(1), "launch": In(1), "group_size": In(range(max_heads * 2 + 1)),
                   "seq_len": In(range(max_seq_len * 2 + 1)), "heads": In(range(max_heads * 2 + 1)),
                   "kv_heads": In(range(max_heads * 2 + 1)), "query_len": In(range(max_seq_len * 2 + 1)),
                   "head_dim": In(range(max_head_dim * 2 + 1))}
        for t in TENSORS:
            members.update({f"{t}_base": In(A), f"{t}_row_stride": In(A), f"{t}_head_stride": In(A)})
        lane = signed(8)
        members.update({
            "q": Out(stream.Signature(data.ArrayLayout(lane, rows))),
            "k": Out(stream.Signature(data.ArrayLayout(lane, cols))),
            "v": Out(stream.Signature(data.ArrayLayout(lane, cols))),
            "o": In(stream.Signature(data.StructLayout({"data": data.ArrayLayout(lane, cols), "last": 1}))),
            "ar": Out(stream.Signature(data.StructLayout({"addr": A, "len": 8}))),
            "r": In(stream.Signature(data.StructLayout({"data": bus_width, "resp": 2, "last": 1}))),
            "aw": Out(stream.Signature(data.StructLayout({"addr": A, "len": 8}))),
            "w": Out(stream.Signature(data.StructLayout({"data": bus_width, "strb": self.bus_bytes, "last": 1}))),
            "b": In(stream.Signature(data.StructLayout({"resp": 2}))),
            "busy": Out(1), "done": Out(1), "read_error": Out(1), "write_error": Out(1),
            "bytes_read": Out(32), "bytes_written": Out(32),
        })
        if sparse:
            members["kv_index"] = In(stream.Signature(data.StructLayout({
                "keys": data.ArrayLayout(range(max_seq_len), cols), "count": range(cols + 1), "last": 1})))
        super().__init__(members)

    @property
    def kv_buffer_bits(self) -> int:
        """Bits of the K/V buffer (both tensors)."""
        return 2 * self.cols * self.slots * self.word_stride * 8 * self.cols

    @property
    def memory_bits(self) -> int:
        """Bits of all staging buffers: the K/V buffer, and two block slots each of Q and O."""
        return self.kv_buffer_bits + 2 * 2 * self.rows * self.word_stride * 8 * self.cols

    def fits(self, seq_len: int) -> bool:
        """Whether a head of ``seq_len`` keys is read from memory once (else once per query block; a
        sparse build gathers every block's keys)."""
        return not self.sparse and -(-seq_len // self.cols) <= self.slots

    def _gather(self, m: Module, go, kv_req, tile_counts, addr, d, kv_heads, stacked, fetched, released):
        """Sparse builds: the rows of the keys ``kv_index`` names, tile by tile (K rows, then V rows), each
        into the next slot of the ring; ``tile_counts`` keeps each slot's key count for the V beats."""
        R, C, S, A = self.rows, self.cols, self.slots, self.addr_width
        tile = Signal.like(self.kv_index.payload, name="gather_tile")   # taken off the engine at once
        held, phase_v, primed = Signal(name="gather_held"), Signal(name="gather_v"), Signal(name="gather_primed")
        lane = Signal(range(C), name="gather_lane")
        slot = Signal(range(S), name="gather_slot")
        k_head, v_head, row_addr = (Signal(A, name=f"gather_{n}") for n in ("k_head", "v_head", "row_addr"))
        passed_rows = Signal.like(stacked, name="gather_rows")
        m.d.comb += self.kv_index.ready.eq(~held & ~go)
        with m.If(self.kv_index.valid & self.kv_index.ready):
            m.d.sync += [tile.eq(self.kv_index.payload), held.eq(1), lane.eq(0), phase_v.eq(0), primed.eq(0)]
        # A row's address is a product (key × stride): computed into a register, then offered.
        key = tile.keys[lane]
        stride = Mux(phase_v, addr["v_row_stride"], addr["k_row_stride"])
        with m.If(held & ~primed):
            m.d.sync += [row_addr.eq(Mux(phase_v, v_head, k_head) + key * stride), primed.eq(1)]
        room = (fetched - released)[:_COUNT_BITS] < S
        last_lane = lane == tile.count - 1
        m.d.comb += [kv_req.valid.eq(held & primed & room), kv_req.payload.addr.eq(row_addr),
                     kv_req.payload.length.eq(d), kv_req.payload.tag.kind.eq(Mux(phase_v, _V, _K)),
                     kv_req.payload.tag.bank.eq(lane), kv_req.payload.tag.slot.eq(slot),
                     kv_req.payload.tag.end.eq(phase_v & last_lane)]
        with m.If(go):
            m.d.sync += [held.eq(0), slot.eq(0), k_head.eq(addr["k_base"]), v_head.eq(addr["v_base"]),
                         passed_rows.eq(0)]
        with m.Elif(kv_req.valid & kv_req.ready):
            m.d.sync += primed.eq(0)
            with m.If(~last_lane):
                m.d.sync += lane.eq(lane + 1)
            with m.Elif(~phase_v):
                m.d.sync += [lane.eq(0), phase_v.eq(1)]
            with m.Else():
                m.d.sync += [held.eq(0), fetched.eq(fetched + 1), tile_counts[slot].eq(tile.count),
                             slot.eq(Mux(slot == S - 1, 0, slot + 1))]
                with m.If(tile.last):
                    # A query block's last tile: the K/V head changes after its last block.
                    with m.If(passed_rows + R < stacked):
                        m.d.sync += passed_rows.eq(passed_rows + R)
                    with m.Else():
                        m.d.sync += [passed_rows.eq(0), k_head.eq(k_head + addr["k_head_stride"]),
                                     v_head.eq(v_head + addr["v_head_stride"])]

    def elaborate(self, platform):
        m = Module()
        R, C, G, A = self.rows, self.cols, self.cols, self.addr_width
        S, stride = self.slots, self.word_stride
        W = _COUNT_BITS
        tag_layout = data.StructLayout({"kind": 2, "bank": range(max(R, C)), "slot": range(max(S, 2)), "end": 1})
        m.submodules.reader = reader = RowReader(addr_width=A, data_width=self.bus_width, word_bytes=G,
                                                 max_length=self.max_head_dim, tag_shape=tag_layout,
                                                 outstanding=self.outstanding)
        m.submodules.writer = writer = RowWriter(addr_width=A, data_width=self.bus_width, word_bytes=G,
                                                 max_length=self.max_head_dim, outstanding=self.outstanding)
        wiring.connect(m, wiring.flipped(self.ar), reader.ar)
        wiring.connect(m, wiring.flipped(self.r), reader.r)
        wiring.connect(m, wiring.flipped(self.aw), writer.aw)
        wiring.connect(m, wiring.flipped(self.w), writer.w)
        wiring.connect(m, wiring.flipped(self.b), writer.b)
        m.d.comb += [self.read_error.eq(reader.error), self.write_error.eq(writer.error)]

        # --- the run's values, taken at start.
        run = {name: Signal.like(getattr(self, name), name=f"run_{name}", reset_less=True)
               for name in ("seq_len", "kv_heads", "query_len", "head_dim")}
        addr = {f"{t}_{k}": Signal(A, name=f"run_{t}_{k}", reset_less=True)
                for t in TENSORS for k in ("base", "row_stride", "head_stride")}
        with m.If(self.start & ~self.busy):
            m.d.sync += [run["seq_len"].eq(self.seq_len), run["head_dim"].eq(self.head_dim),
                         run["kv_heads"].eq(Mux(self.kv_heads == 0, self.heads, self.kv_heads)),
                         run["query_len"].eq(Mux(self.query_len == 0, self.seq_len, self.query_len))]
            m.d.sync += [reg.eq(getattr(self, name)) for name, reg in addr.items()]
        L, d, H_kv, Lq = run["seq_len"], run["head_dim"], run["kv_heads"], run["query_len"]
        group = Signal.like(self.group_size, reset_less=True)
        stacked = Signal(range(self.max_seq_len * self.max_heads + 1), reset_less=True)   # queries per K/V head
        with m.If(self.launch):
            m.d.sync += group.eq(self.group_size)
        m.d.sync += stacked.eq(Lq * group)
        words = Signal(range(self.words_per_row + 1), reset_less=True)     # words per row: ceil(d / cols)
        m.d.sync += words.eq(sum(Cat(d > j * G for j in range(self.words_per_row))))
        fits = Signal(reset_less=True)
        m.d.sync += fits.eq((L <= S * C) if not self.sparse else 0)

        # Launch two cycles after the engine's: ``group`` is taken at its launch, ``stacked`` registered from it.
        go, launched = Signal(), Signal()
        m.d.sync += [launched.eq(self.launch), go.eq(launched)]
        # Busy from the engine's launch (a start the engine refuses never launches the DMA).
        with m.If(self.start & ~self.busy):
            m.d.sync += self.done.eq(0)
        with m.If(self.launch):
            m.d.sync += self.busy.eq(1)

        # --- counters between the two sides (modulo 2^W; their differences stay below S + 2).
        kv_fetched, kv_filled, kv_released = (Signal(W, name=n) for n in ("kv_fetched", "kv_filled", "kv_released"))
        q_fetched, q_filled, q_released = (Signal(W, name=n) for n in ("q_fetched", "q_filled", "q_released"))
        o_filled, o_released = Signal(W, name="o_filled"), Signal(W, name="o_released")
        with m.If(go):
            m.d.sync += [c.eq(0) for c in (kv_fetched, kv_filled, kv_released, q_fetched, q_filled, q_released,
                                           o_filled, o_released)]
            m.d.sync += [self.bytes_read.eq(0), self.bytes_written.eq(0)]

        def ahead(a, b):
            """``a - b`` as a small count (``a`` never behind ``b``)."""
            return (a - b)[:W]

        # --- staging buffers: a bank per lane, words of cols bytes.
        k_banks = [_Bank(m, f"k_bank{c}", 8 * G, S * stride) for c in range(C)]
        v_banks = [_Bank(m, f"v_bank{c}", 8 * G, S * stride) for c in range(C)]
        q_banks = [_Bank(m, f"q_bank{r}", 8 * G, 2 * stride) for r in range(R)]
        o_banks = [_Bank(m, f"o_bank{r}", 8 * G, 2 * stride) for r in range(R)]

        # --- fetch: row requests for Q blocks and K/V tiles, Q first.
        request = reader.req.payload.shape()
        q_req, kv_req = _RowRequest("q_req", request), _RowRequest("kv_req", request)
        pick_q = q_req.valid
        chosen = Mux(pick_q, q_req.payload.as_value(), kv_req.payload.as_value())
        m.d.comb += [reader.req.valid.eq(q_req.valid | kv_req.valid), reader.req.payload.eq(chosen),
                     q_req.ready.eq(reader.req.ready), kv_req.ready.eq(reader.req.ready & ~pick_q)]
        with m.If(reader.req.valid & reader.req.ready):
            m.d.sync += self.bytes_read.eq(self.bytes_read + d)

        # Q: per K/V head, its group's stacked rows (head x mod g at position x div g), in blocks of rows.
        q_rows = _StackedRows(m, "q_rows", A, addr["q_base"], addr["q_row_stride"], addr["q_head_stride"],
                              group, Lq, H_kv, R)
        q_slot = Signal()
        m.d.comb += [q_rows.start.eq(go),
                     q_req.valid.eq(q_rows.active & (ahead(q_fetched, q_released) < 2)),
                     q_req.payload.addr.eq(q_rows.addr), q_req.payload.length.eq(d),
                     q_req.payload.tag.kind.eq(_Q), q_req.payload.tag.bank.eq(q_rows.row_in_block),
                     q_req.payload.tag.slot.eq(q_slot), q_req.payload.tag.end.eq(q_rows.block_end),
                     q_rows.advance.eq(q_req.valid & q_req.ready)]
        with m.If(q_rows.advance & q_rows.block_end):
            m.d.sync += [q_fetched.eq(q_fetched + 1), q_slot.eq(~q_slot)]
        with m.If(go):
            m.d.sync += q_slot.eq(0)

        # K/V: per K/V head, per pass, per tile: the tile's K rows, then its V rows.
        tile_counts = Signal(data.ArrayLayout(range(C + 1), S))   # keys of the tile in each slot (sparse)
        if self.sparse:
            self._gather(m, go, kv_req, tile_counts, addr, d, H_kv, stacked, kv_fetched, kv_released)
        if not self.sparse:
            hk = Signal(range(self.max_heads * 2 + 1))
            kv_active, phase_v = Signal(), Signal()
            passed_rows = Signal.like(stacked)          # query rows the passes so far of this head cover
            t0 = Signal(range(self.max_seq_len + C + 1))
            lane = Signal(range(C))
            slot = Signal(range(S))
            k_head_addr, v_head_addr, k_tile_addr, v_tile_addr, row_addr = (
                Signal(A, name=n) for n in ("k_head_addr", "v_head_addr", "k_tile_addr", "v_tile_addr", "kv_row_addr"))
            count = Signal(range(C + 1))
            m.d.comb += count.eq(Mux(L - t0 < C, L - t0, C))
            m.d.comb += [kv_req.valid.eq(kv_active & (ahead(kv_fetched, kv_released) < S)),
                         kv_req.payload.addr.eq(row_addr), kv_req.payload.length.eq(d),
                         kv_req.payload.tag.kind.eq(Mux(phase_v, _V, _K)), kv_req.payload.tag.bank.eq(lane),
                         kv_req.payload.tag.slot.eq(slot), kv_req.payload.tag.end.eq(phase_v & (lane == count - 1))]
            k_row, v_row = addr["k_row_stride"], addr["v_row_stride"]
            with m.If(go):
                m.d.sync += [kv_active.eq(1), phase_v.eq(0), hk.eq(0), passed_rows.eq(0), t0.eq(0), lane.eq(0),
                             slot.eq(0), k_head_addr.eq(addr["k_base"]), v_head_addr.eq(addr["v_base"]),
                             k_tile_addr.eq(addr["k_base"]), v_tile_addr.eq(addr["v_base"]), row_addr.eq(addr["k_base"])]
            with m.Elif(kv_req.valid & kv_req.ready):
                with m.If(lane != count - 1):
                    m.d.sync += [lane.eq(lane + 1), row_addr.eq(row_addr + Mux(phase_v, v_row, k_row))]
                with m.Elif(~phase_v):
                    # The next tile's K starts one row past this tile's last.
                    m.d.sync += [lane.eq(0), phase_v.eq(1), row_addr.eq(v_tile_addr), k_tile_addr.eq(row_addr + k_row)]
                with m.Else():
                    m.d.sync += [lane.eq(0), phase_v.eq(0), kv_fetched.eq(kv_fetched + 1),
                                 slot.eq(Mux(slot == S - 1, 0, slot + 1))]
                    with m.If(t0 + C < L):
                        m.d.sync += [t0.eq(t0 + C), v_tile_addr.eq(row_addr + v_row), row_addr.eq(k_tile_addr)]
                    with m.Elif(~fits & (passed_rows + R < stacked)):
                        # Another query block: the head's tiles again.
                        m.d.sync += [t0.eq(0), passed_rows.eq(passed_rows + R), k_tile_addr.eq(k_head_addr),
                                     v_tile_addr.eq(v_head_addr), row_addr.eq(k_head_addr)]
                    with m.Else():
                        next_k, next_v = k_head_addr + addr["k_head_stride"], v_head_addr + addr["v_head_stride"]
                        m.d.sync += [t0.eq(0), passed_rows.eq(0), hk.eq(hk + 1), k_head_addr.eq(next_k),
                                     v_head_addr.eq(next_v), k_tile_addr.eq(next_k), v_tile_addr.eq(next_v),
                                     row_addr.eq(next_k)]
                        with m.If(hk + 1 == H_kv):
                            m.d.sync += kv_active.eq(0)

        # --- land: the read words into the staging banks; a tile or block is filled with its last word.
        landed = reader.words.payload
        m.d.comb += reader.words.ready.eq(1)
        at = landed.tag.slot * stride + landed.word
        for kind, banks in ((_Q, q_banks), (_K, k_banks), (_V, v_banks)):
            for b, bank in enumerate(banks):
                m.d.comb += [bank.write.addr.eq(at), bank.write.data.eq(landed.data),
                             bank.write.en.eq(reader.words.valid & (landed.tag.kind == kind) & (landed.tag.bank == b))]
        row_landed = reader.words.valid & landed.last & landed.tag.end
        with m.If(row_landed & (landed.tag.kind == _Q)):
            m.d.sync += q_filled.eq(q_filled + 1)
        with m.If(row_landed & (landed.tag.kind == _V)):
            m.d.sync += kv_filled.eq(kv_filled + 1)

        # --- emit: Q columns, K columns, V row pieces, each a read of the banks and a register.
        q_emit = _ColumnEmitter(m, "q_emit", self.q, q_banks, d, G, stride)
        m.d.comb += [q_emit.start.eq(go), q_emit.available.eq(ahead(q_filled, q_emit.block) != 0)]
        with m.If(q_emit.block_done):
            m.d.sync += q_released.eq(q_released + 1)

        walk_k = _TileWalk(m, "k_walk", L, C, R, S, stacked, fits, H_kv, go, self.max_seq_len,
                           tile_counts if self.sparse else None)
        k_emit = _ColumnEmitter(m, "k_emit", self.k, k_banks, d, G, stride, walk=walk_k)
        m.d.comb += [k_emit.start.eq(go), k_emit.available.eq(ahead(kv_filled, walk_k.tile) != 0)]

        walk_v = _TileWalk(m, "v_walk", L, C, R, S, stacked, fits, H_kv, go, self.max_seq_len,
                           tile_counts if self.sparse else None)
        v_emit = _PieceEmitter(m, "v_emit", self.v, v_banks, words, walk_v, L, C, stride)
        m.d.comb += [v_emit.start.eq(go), v_emit.available.eq(ahead(kv_filled, walk_v.tile) != 0)]
        with m.If(walk_v.advance & (~fits | walk_v.last_block)):
            m.d.sync += kv_released.eq(kv_released + 1)

        # --- O: the engine's beats into a block slot (per chunk, per row), rows written back in order.
        o_rows_left = Signal.like(stacked)
        o_row, o_word, o_slot = Signal(range(R)), Signal(range(self.words_per_row + 1)), Signal()
        block_rows = Mux(o_rows_left < R, o_rows_left, R)
        m.d.comb += self.o.ready.eq((ahead(o_filled, o_released) < 2) & ~go)
        for r, bank in enumerate(o_banks):
            m.d.comb += [bank.write.addr.eq(o_slot * stride + o_word),
                         bank.write.data.eq(self.o.payload.data.as_value()),
                         bank.write.en.eq(self.o.valid & self.o.ready & (o_row == r))]
        with m.If(go):
            m.d.sync += [o_rows_left.eq(stacked), o_row.eq(0), o_word.eq(0), o_slot.eq(0)]
        with m.Elif(self.o.valid & self.o.ready):
            with m.If(o_row != block_rows - 1):
                m.d.sync += o_row.eq(o_row + 1)
            with m.Elif(o_word != words - 1):
                m.d.sync += [o_row.eq(0), o_word.eq(o_word + 1)]
            with m.Else():
                m.d.sync += [o_row.eq(0), o_word.eq(0), o_slot.eq(~o_slot), o_filled.eq(o_filled + 1)]
                with m.If(o_rows_left > R):
                    m.d.sync += o_rows_left.eq(o_rows_left - R)
                with m.Else():
                    m.d.sync += o_rows_left.eq(stacked)
        # ``go`` is a cycle after the engine starts: its first O beat comes far later.

        o_rows = _StackedRows(m, "o_rows", A, addr["o_base"], addr["o_row_stride"], addr["o_head_stride"],
                              group, Lq, H_kv, R)
        o_blocks_requested = Signal(W)
        m.d.comb += [o_rows.start.eq(go),
                     writer.req.valid.eq(o_rows.active & (ahead(o_filled, o_blocks_requested) != 0)),
                     writer.req.payload.addr.eq(o_rows.addr), writer.req.payload.length.eq(d),
                     o_rows.advance.eq(writer.req.valid & writer.req.ready)]
        with m.If(go):
            m.d.sync += o_blocks_requested.eq(0)
        with m.Elif(o_rows.advance & o_rows.block_end):
            m.d.sync += o_blocks_requested.eq(o_blocks_requested + 1)
        with m.If(writer.req.valid & writer.req.ready):
            m.d.sync += self.bytes_written.eq(self.bytes_written + d)

        o_out = _RowWordEmitter(m, "o_out", writer.words, o_banks, words, stacked, H_kv, R, stride)
        m.d.comb += [o_out.start.eq(go), o_out.available.eq(ahead(o_filled, o_released) != 0)]
        with m.If(o_out.block_done):
            m.d.sync += o_released.eq(o_released + 1)

        finishing = Signal()
        with m.If(go):
            m.d.sync += finishing.eq(1)
        with m.If(finishing & ~o_out.active & ~o_rows.active & writer.idle & ~go):
            m.d.sync += [finishing.eq(0), self.busy.eq(0), self.done.eq(1)]
        return m


class _RowRequest:
    """A row request offered to the reader: ``valid``, ``ready`` and the reader's request payload."""

    def __init__(self, name: str, layout):
        self.valid, self.ready = Signal(name=f"{name}_valid"), Signal(name=f"{name}_ready")
        self.payload = Signal(layout, name=f"{name}_payload")


class _StackedRows:
    """Walks the stacked query rows of every K/V head: row ``x`` of head ``hk``'s stream is query head
    ``hk·g + x mod g`` at position ``x div g``; ``addr`` is its row's address, ``row_in_block`` its row of
    the block of ``rows``, ``block_end`` the last row of a block (or of the head)."""

    def __init__(self, m: Module, name: str, A: int, base, row_stride, head_stride, group, query_len, kv_heads,
                 rows: int):
        self.start, self.advance = Signal(name=f"{name}_start"), Signal(name=f"{name}_advance")
        self.active = Signal(name=f"{name}_active")
        self.addr = Signal(A, name=f"{name}_addr")
        self.row_in_block = Signal(range(rows), name=f"{name}_row")
        self.block_end = Signal(name=f"{name}_block_end")
        group_addr, head_off, pos_off = (Signal(A, name=f"{name}_{n}") for n in ("group_addr", "head_off", "pos_off"))
        member = Signal.like(group, name=f"{name}_member")
        position = Signal.like(query_len, name=f"{name}_position")
        hk = Signal.like(kv_heads, name=f"{name}_hk")
        last_member = member == group - 1
        head_end = last_member & (position == query_len - 1)
        m.d.comb += [self.addr.eq(group_addr + head_off + pos_off),
                     self.block_end.eq((self.row_in_block == rows - 1) | head_end)]
        with m.If(self.start):
            m.d.sync += [self.active.eq(1), group_addr.eq(base), head_off.eq(0), pos_off.eq(0), member.eq(0),
                         position.eq(0), hk.eq(0), self.row_in_block.eq(0)]
        with m.Elif(self.advance):
            m.d.sync += self.row_in_block.eq(Mux(self.block_end, 0, self.row_in_block + 1))
            with m.If(~last_member):
                m.d.sync += [member.eq(member + 1), head_off.eq(head_off + head_stride)]
            with m.Else():
                m.d.sync += [member.eq(0), head_off.eq(0), position.eq(position + 1), pos_off.eq(pos_off + row_stride)]
            with m.If(head_end):
                # The next group's first head follows this group's last.
                m.d.sync += [group_addr.eq(group_addr + head_off + head_stride), position.eq(0), pos_off.eq(0),
                             hk.eq(hk + 1)]
                with m.If(hk + 1 == kv_heads):
                    m.d.sync += self.active.eq(0)


class _TileWalk:
    """The order in which the engine takes key tiles: per K/V head, per query block, every tile; ``tile`` the
    fetch count of the current tile and ``slot`` its slot (a fitting head's tiles are replayed per block)."""

    def __init__(self, m: Module, name: str, seq_len, cols: int, rows: int, slots: int, stacked, fits, kv_heads, go,
                 max_seq_len: int, tile_counts=None):
        self.advance = Signal(name=f"{name}_advance")
        self.active = Signal(name=f"{name}_active")
        self.tile = Signal(_COUNT_BITS, name=f"{name}_tile")
        self.slot = Signal(range(slots), name=f"{name}_slot")
        self.t0 = Signal(range(max_seq_len + cols + 1), name=f"{name}_t0")
        self.count = Signal(range(cols + 1), name=f"{name}_count")
        self.last_block = Signal(name=f"{name}_last_block")
        head_tile = Signal.like(self.tile, name=f"{name}_head_tile")
        head_slot = Signal.like(self.slot, name=f"{name}_head_slot")
        block_rows = Signal.like(stacked, name=f"{name}_block_rows")
        hk = Signal(len(kv_heads) + 1, name=f"{name}_hk")
        m.d.comb += [self.count.eq(Mux(seq_len - self.t0 < cols, seq_len - self.t0, cols)),
                     self.last_block.eq(block_rows + rows >= stacked)]
        next_slot = Mux(self.slot == slots - 1, 0, self.slot + 1)
        if tile_counts is not None:
            # Gathered tiles (sparse): every tile once, in the order fetched; its keys as the gather counted.
            m.d.comb += [self.count.eq(tile_counts[self.slot]), self.last_block.eq(1)]
            with m.If(go):
                m.d.sync += [self.active.eq(1), self.tile.eq(0), self.slot.eq(0)]
            with m.Elif(self.advance):
                m.d.sync += [self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
            return
        with m.If(go):
            m.d.sync += [self.active.eq(1), self.tile.eq(0), self.slot.eq(0), self.t0.eq(0), head_tile.eq(0),
                         head_slot.eq(0), block_rows.eq(0), hk.eq(0)]
        with m.Elif(self.advance):
            with m.If(self.t0 + cols < seq_len):
                m.d.sync += [self.t0.eq(self.t0 + cols), self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
            with m.Elif(~self.last_block):
                m.d.sync += [self.t0.eq(0), block_rows.eq(block_rows + rows)]
                with m.If(fits):
                    m.d.sync += [self.tile.eq(head_tile), self.slot.eq(head_slot)]
                with m.Else():
                    m.d.sync += [self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
            with m.Else():
                m.d.sync += [self.t0.eq(0), block_rows.eq(0), self.tile.eq(self.tile + 1), self.slot.eq(next_slot),
                             head_tile.eq(self.tile + 1), head_slot.eq(next_slot), hk.eq(hk + 1)]
                with m.If(hk + 1 == kv_heads):
                    m.d.sync += self.active.eq(0)


def _emit_register(m: Module, name: str, out, issue, payload_of, side: dict):
    """The emit pipeline: an address stage ``issue`` reads the banks (their read ports enabled while the
    output may move), ``side`` values ride along in registers, and ``payload_of(side_registers)`` makes the
    beat from the banks' words.  Returns ``move``, the cycle the address stage may advance."""
    move = Signal(name=f"{name}_move")
    m.d.comb += move.eq(~out.valid | out.ready)
    held = {k: Signal.like(v, name=f"{name}_{k}_held") for k, v in side.items()}
    with m.If(move):
        m.d.sync += out.valid.eq(issue)
        with m.If(issue):
            m.d.sync += [held[k].eq(v) for k, v in side.items()]
    m.d.comb += out.payload.eq(payload_of(held))
    return move


class _ColumnEmitter:
    """Beats of columns: beat ``k`` takes byte ``k mod cols`` of word ``k div cols`` of every bank (Q of a
    block, or K of a tile); ``d`` beats per block or tile."""

    def __init__(self, m: Module, name: str, out, banks, head_dim, word_bytes: int, stride: int, walk=None):
        self.start, self.available = Signal(name=f"{name}_start"), Signal(name=f"{name}_available")
        self.block = Signal(_COUNT_BITS, name=f"{name}_block")
        self.block_done = Signal(name=f"{name}_block_done")
        active = Signal(name=f"{name}_active")
        slot = Signal(name=f"{name}_slot") if walk is None else walk.slot
        k = Signal.like(head_dim, name=f"{name}_k")
        byte = Signal(range(word_bytes), name=f"{name}_byte")
        word = Signal(range(stride), name=f"{name}_word")
        running = active if walk is None else walk.active
        issue = running & self.available
        move = _emit_register(m, name, out, issue, lambda held: Cat(
            bank.read.data.word_select(held["byte"], 8) for bank in banks), {"byte": byte})
        step = issue & move
        last = k == head_dim - 1
        for bank in banks:
            m.d.comb += [bank.read.addr.eq(slot * stride + word), bank.read.en.eq(move)]
        m.d.comb += self.block_done.eq(step & last)
        if walk is not None:
            m.d.comb += walk.advance.eq(step & last)
        with m.If(self.start):
            m.d.sync += [active.eq(1), k.eq(0), byte.eq(0), word.eq(0), self.block.eq(0)]
            if walk is None:
                m.d.sync += slot.eq(0)
        with m.Elif(step):
            with m.If(last):
                m.d.sync += [k.eq(0), byte.eq(0), word.eq(0), self.block.eq(self.block + 1)]
                if walk is None:
                    m.d.sync += slot.eq(~slot)
            with m.Elif(byte == word_bytes - 1):
                m.d.sync += [k.eq(k + 1), byte.eq(0), word.eq(word + 1)]
            with m.Else():
                m.d.sync += [k.eq(k + 1), byte.eq(byte + 1)]


class _PieceEmitter:
    """V beats: per tile, per word ``w`` of the rows, per key ``c`` of the tile: word ``w`` of bank ``c``."""

    def __init__(self, m: Module, name: str, out, banks, words, walk, seq_len, cols: int, stride: int):
        self.start, self.available = Signal(name=f"{name}_start"), Signal(name=f"{name}_available")
        key = Signal(range(cols), name=f"{name}_key")
        word = Signal(range(stride + 1), name=f"{name}_word")
        issue = walk.active & self.available
        move = _emit_register(m, name, out, issue, lambda held: Cat(
            bank.read.data for bank in banks).word_select(held["key"], len(banks[0].read.data)), {"key": key})
        step = issue & move
        for bank in banks:
            m.d.comb += [bank.read.addr.eq(walk.slot * stride + word), bank.read.en.eq(move)]
        tile_end = (key == walk.count - 1) & (word == words - 1)
        m.d.comb += walk.advance.eq(step & tile_end)
        with m.If(self.start):
            m.d.sync += [key.eq(0), word.eq(0)]
        with m.Elif(step):
            with m.If(key != walk.count - 1):
                m.d.sync += key.eq(key + 1)
            with m.Elif(word != words - 1):
                m.d.sync += [key.eq(0), word.eq(word + 1)]
            with m.Else():
                m.d.sync += [key.eq(0), word.eq(0)]


class _RowWordEmitter:
    """O to the writer: per block, per row of the block, the row's words from its bank."""

    def __init__(self, m: Module, name: str, out, banks, words, stacked, kv_heads, rows: int, stride: int):
        self.start, self.available = Signal(name=f"{name}_start"), Signal(name=f"{name}_available")
        self.block_done = Signal(name=f"{name}_block_done")
        self.active = Signal(name=f"{name}_active")
        row = Signal(range(rows), name=f"{name}_row")
        word = Signal(range(stride + 1), name=f"{name}_word")
        slot = Signal(name=f"{name}_slot")
        rows_left = Signal.like(stacked, name=f"{name}_rows_left")
        hk = Signal(len(kv_heads) + 1, name=f"{name}_hk")
        issue = self.active & self.available
        move = _emit_register(m, name, out, issue, lambda held: Cat(
            bank.read.data for bank in banks).word_select(held["row"], len(banks[0].read.data)), {"row": row})
        step = issue & move
        for bank in banks:
            m.d.comb += [bank.read.addr.eq(slot * stride + word), bank.read.en.eq(move)]
        block_rows = Mux(rows_left < rows, rows_left, rows)
        block_end = (row == block_rows - 1) & (word == words - 1)
        m.d.comb += self.block_done.eq(step & block_end)
        with m.If(self.start):
            m.d.sync += [self.active.eq(1), row.eq(0), word.eq(0), slot.eq(0), rows_left.eq(stacked), hk.eq(0)]
        with m.Elif(step):
            with m.If(word != words - 1):
                m.d.sync += word.eq(word + 1)
            with m.Elif(row != block_rows - 1):
                m.d.sync += [word.eq(0), row.eq(row + 1)]
            with m.Else():
                m.d.sync += [word.eq(0), row.eq(0), slot.eq(~slot)]
                with m.If(rows_left > rows):
                    m.d.sync += rows_left.eq(rows_left - rows)
                with m.Else():
                    m.d.sync += [rows_left.eq(stacked), hk.eq(hk + 1)]
                    with m.If(hk + 1 == kv_heads):
                        m.d.sync += self.active.eq(0)
