"""The engine's DMA: Q, K, V read from tensors in memory and sent in the engine's order, O written back."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, int_in_range, positive_int

from .axi_burst import bus_bytes_of
from .row_reader import RowReader
from .row_writer import RowWriter

__all__ = ["EngineDMA", "TENSORS", "kv_slots", "list_entries", "list_memory_bits"]

#: The tensors in memory, each with a base address, a row stride and a head stride in bytes.
TENSORS = ("q", "k", "v", "o")
#: Tile slots of the K/V buffer at least: the reads of a few tiles in flight hide the memory's latency.
MIN_KV_SLOTS = 4
#: Bits of the tile and block counters compared between the fetch and the emit sides (differences stay small).
_COUNT_BITS = 16
_Q, _K, _V, _LIST = 0, 1, 2, 3
_ADDRESS_FIELDS = ("base", "row_stride", "head_stride")
#: Cycles from a row's (head, position) to its address through the lists: the list memory's read, the
#: entry, the two products, their sum.
_PLACE_LATENCY = 4


def kv_slots(*, cols: int, kv_buffer_keys: int, prob_tiles: int) -> int:
    """Key tiles the K/V buffer holds: ``kv_buffer_keys / cols``, at least enough to keep reads ahead."""
    return max(kv_buffer_keys // cols, MIN_KV_SLOTS, prob_tiles + 2)


def list_entries(cols: int) -> int:
    """Token list entries (uint16) per list row read and per word of the list memory: a power of two
    filling at most one ``cols``-byte word."""
    return _pow2_at_most(max(1, cols // 2))


def list_memory_bits(max_seq_len: int, entries: int) -> int:
    """Bits of one copy of the token list memory."""
    return 16 * entries * -(-max_seq_len // entries)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _pow2_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1)


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
    ``bytes_written`` count the bytes moved by the run.

    SpAtten builds (docs/system.md, *SpAtten layers through memory*): an
    importance run (``importance``) walks K twice per query block (its scan
    pass reads K alone when the head does not fit the buffer) and writes the
    engine's token and head importances; a row-flag build writes the row flags
    (a byte per query row) and reads K from its MSB plane when ``k_msb_bits``
    is 1, 2 or 4 (fields packed from bit 0, lifted into the lane's top bits);
    ``lists`` places rows through the token list (bit 0: Q and O, bit 1: K and
    V) and heads through the head list (bit 2), both read from memory (uint16)
    at the run's start.  Side rows share the write master with O, between O's
    rows.

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
    importance_widths : (int, int) or None
        An importance build's token and head importance widths (written as 4-byte words, 8 past 32 bits).
    row_flags : bool
        A row-flag build: row flags written, K's MSB plane read.
    lists : bool
        Token and head lists (dense builds).

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
    importance, token_importance_base, head_importance_base, token_importance, head_importance :
        Only with ``importance_widths``: the run ranks; where its importances go; the engine's streams.
    k_msb_bits, row_flags_base, row_flags :
        Only with ``row_flags``: K's plane (0 or 8: K in full); where the flags go; the engine's stream.
    lists, token_list_base, head_list_base : In
        Only with ``lists``: which rows and heads go through the lists; where the lists are.
    """

    def __init__(self, *, rows: int, cols: int, max_seq_len: int, max_heads: int, max_head_dim: int,
                 prob_tiles: int = 3, lane_width: int = 8, addr_width: int = 32, bus_width: int = 64,
                 kv_buffer_keys: int = 0, outstanding: int = 8, sparse: bool = False,
                 importance_widths: tuple[int, int] | None = None, row_flags: bool = False, lists: bool = False):
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
        self.progressive = boolean("row_flags", row_flags)   # row flags, and K read from its MSB plane
        self.importance_widths = importance_widths
        self.has_lists = boolean("lists", lists)
        if sparse and (importance_widths is not None or row_flags or lists):
            raise ValueError("importance runs, row flags and token and head lists take a dense engine "
                             "(sparse = false)")
        self.list_entries = list_entries(cols)
        #: Bytes of one token importance and one head importance in memory (little-endian, unsigned).
        self.importance_bytes = None if importance_widths is None else tuple(
            4 if w <= 32 else 8 for w in importance_widths)
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
        if importance_widths is not None:
            token_width, head_width = importance_widths
            members.update({
                "importance": In(1), "token_importance_base": In(A), "head_importance_base": In(A),
                "token_importance": In(stream.Signature(data.StructLayout({
                    "data": data.ArrayLayout(unsigned(token_width), cols), "last": 1}))),
                "head_importance": In(stream.Signature(data.StructLayout({"data": unsigned(head_width), "last": 1}))),
            })
        if row_flags:
            members.update({"k_msb_bits": In(4), "row_flags_base": In(A),
                            "row_flags": In(stream.Signature(data.StructLayout({"flags": rows, "last": 1})))})
        if lists:
            members.update({"lists": In(3), "token_list_base": In(A), "head_list_base": In(A)})
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
        """Bits of all staging buffers: the K/V buffer, and two block slots each of Q and O; with lists,
        the token list (``max_seq_len`` uint16, one copy per read port: Q, K/V and O)."""
        staging = self.kv_buffer_bits + 2 * 2 * self.rows * self.word_stride * 8 * self.cols
        return staging + (3 * list_memory_bits(self.max_seq_len, self.list_entries) if self.has_lists else 0)

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

    def _load_lists(self, m: Module, go, run, addr, seq_len, query_len, list_req, words):
        """At a run's start, read the token list (``query_len`` entries, or ``seq_len`` when K and V take it)
        and the head list (``heads`` entries) into on-chip memory, a row of ``list_entries`` uint16 entries
        per request; returns the pulse that starts the rows' fetch once they have landed, and the lists."""
        E, G, A = self.list_entries, self.cols, self.addr_width
        log_e = E.bit_length() - 1
        uses = run["lists"]
        n = Mux(uses[1], seq_len, Mux(uses[0], query_len, 0))
        token_rows, head_rows = Signal.like(seq_len, name="token_list_rows"), Signal.like(seq_len, name="head_list_rows")
        m.d.sync += [token_rows.eq((n + E - 1) >> log_e), head_rows.eq(Mux(uses[2], (run["heads"] + E - 1) >> log_e, 0))]
        total = token_rows + head_rows

        # Requests: the token list's rows, then the head list's; the last row of each only as long as the list.
        loading, requested, landed = Signal(name="lists_loading"), Signal.like(total), Signal.like(total)
        row_addr, left = Signal(A, name="list_row_addr"), Signal.like(seq_len, name="list_left")
        in_heads = requested >= token_rows
        m.d.comb += [list_req.valid.eq(loading & (requested != total)), list_req.payload.addr.eq(row_addr),
                     list_req.payload.length.eq(Mux(left < E, left, E) << 1), list_req.payload.tag.kind.eq(_LIST)]
        with m.If(go):
            m.d.sync += [loading.eq(uses != 0), requested.eq(0), landed.eq(0),
                         row_addr.eq(Mux(token_rows != 0, addr["token_list_base"], addr["head_list_base"])),
                         left.eq(Mux(token_rows != 0, n, run["heads"]))]
        with m.Elif(list_req.valid & list_req.ready):
            m.d.sync += requested.eq(requested + 1)
            with m.If(~in_heads & (requested + 1 == token_rows)):
                m.d.sync += [row_addr.eq(addr["head_list_base"]), left.eq(run["heads"])]
            with m.Else():
                m.d.sync += [row_addr.eq(row_addr + 2 * E), left.eq(left - E)]

        # Landing, in request order (one read ID): row ``landed`` of the token list or of the head list.
        listed = _Lists(m, self, E, run["lists"])
        word = words.payload
        is_list = words.valid & (word.tag.kind == _LIST)
        # A list row is one word, or (1-byte words) two: the word's bytes go to their lanes of the entry row.
        lanes = min(G, 2 * E)
        shifted = (word.data << (word.word * 8 * G))[:16 * E]
        enables = Const((1 << lanes) - 1, 2 * E) << (word.word * G)
        head_row = landed - token_rows
        m.d.comb += [listed.token_write.addr.eq(landed), listed.token_write.data.eq(shifted),
                     listed.token_write.en.eq(Mux(is_list & (landed < token_rows), enables[:2 * E], 0))]
        for h, entry in enumerate(listed.heads):
            with m.If(is_list & (landed >= token_rows) & (head_row == h // E)):
                for b in range(2):
                    lane = 2 * (h % E) + b
                    with m.If(enables[lane]):
                        m.d.sync += entry[8 * b:8 * b + 8].eq(shifted[8 * lane:8 * lane + 8])
        with m.If(is_list & word.last):
            m.d.sync += landed.eq(landed + 1)
        loaded = Signal(name="lists_loaded")
        m.d.comb += loaded.eq(loading & (landed == total) & ~go)
        with m.If(loaded):
            m.d.sync += loading.eq(0)
        fetch_go = Signal(name="fetch_go")
        m.d.comb += fetch_go.eq(Mux(uses != 0, loaded, go))
        return fetch_go, listed

    def elaborate(self, platform):
        m = Module()
        R, C, G, A = self.rows, self.cols, self.cols, self.addr_width
        S, stride = self.slots, self.word_stride
        W = _COUNT_BITS
        tag_layout = data.StructLayout({"kind": 2, "bank": range(max(R, C)), "slot": range(max(S, 2)), "end": 1})
        m.submodules.reader = reader = RowReader(addr_width=A, data_width=self.bus_width, word_bytes=G,
                                                 max_length=max(self.max_head_dim, 2 * self.list_entries),
                                                 tag_shape=tag_layout,
                                                 outstanding=self.outstanding)
        longest = max(self.max_head_dim, self.rows if self.progressive else 0,
                      *((C * self.importance_bytes[0], self.importance_bytes[1]) if self.importance_bytes else ()))
        m.submodules.writer = writer = RowWriter(addr_width=A, data_width=self.bus_width, word_bytes=G,
                                                 max_length=longest, outstanding=self.outstanding)
        wiring.connect(m, wiring.flipped(self.ar), reader.ar)
        wiring.connect(m, wiring.flipped(self.r), reader.r)
        wiring.connect(m, wiring.flipped(self.aw), writer.aw)
        wiring.connect(m, wiring.flipped(self.w), writer.w)
        wiring.connect(m, wiring.flipped(self.b), writer.b)
        m.d.comb += [self.read_error.eq(reader.error), self.write_error.eq(writer.error)]

        # --- the run's values, taken at start.
        run = {name: Signal.like(getattr(self, name), name=f"run_{name}", reset_less=True)
               for name in ("seq_len", "kv_heads", "query_len", "head_dim") + (("lists", "heads") if self.has_lists else ())}
        addr = {f"{t}_{k}": Signal(A, name=f"run_{t}_{k}", reset_less=True)
                for t in TENSORS for k in ("base", "row_stride", "head_stride")}
        imp_run = Signal(name="run_importance", reset_less=True)   # K twice per block, importances written
        msb_bits = Signal(4, name="run_k_msb_bits", reset_less=True)   # 1, 2, 4: K's MSB plane; 8: K in full
        sides = self.importance_widths is not None or self.progressive
        with m.If(self.start & ~self.busy):
            if self.importance_widths is not None:
                m.d.sync += imp_run.eq(self.importance)
                addr.update({n: Signal(A, name=f"run_{n}", reset_less=True)
                             for n in ("token_importance_base", "head_importance_base")})
            if self.has_lists:
                m.d.sync += [run["lists"].eq(self.lists), run["heads"].eq(self.heads)]
                addr.update({n: Signal(A, name=f"run_{n}", reset_less=True)
                             for n in ("token_list_base", "head_list_base")})
            if self.progressive:
                m.d.sync += msb_bits.eq(Mux(self.k_msb_bits == 0, 8, self.k_msb_bits))
                addr["row_flags_base"] = Signal(A, name="run_row_flags_base", reset_less=True)
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
        scan_run = Signal(reset_less=True)     # an importance run re-reading per block: scan tiles of K alone
        m.d.sync += scan_run.eq(imp_run & ~fits)
        k_length = Signal.like(d, name="k_length", reset_less=True)   # bytes of a K row (its MSB plane packed)
        msb_mask = Signal(8, name="msb_mask", reset_less=True)
        if self.progressive:
            m.d.sync += [k_length.eq(Mux(msb_bits == 8, d, Mux(msb_bits == 4, (d + 1) >> 1,
                                                                 Mux(msb_bits == 2, (d + 3) >> 2, (d + 7) >> 3)))),
                         msb_mask.eq((Const(0xFF00, 16) >> msb_bits)[:8])]
        else:
            m.d.comb += k_length.eq(d)

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
        list_req = _RowRequest("list_req", request)     # only while a run's lists load (nothing else reads then)
        pick_list, pick_q = list_req.valid, q_req.valid
        chosen = Mux(pick_list, list_req.payload.as_value(),
                     Mux(pick_q, q_req.payload.as_value(), kv_req.payload.as_value()))
        m.d.comb += [reader.req.valid.eq(list_req.valid | q_req.valid | kv_req.valid), reader.req.payload.eq(chosen),
                     list_req.ready.eq(reader.req.ready), q_req.ready.eq(reader.req.ready & ~pick_list),
                     kv_req.ready.eq(reader.req.ready & ~pick_list & ~pick_q)]
        # Rows are placed by lists once they have landed: ``fetch_go`` starts Q, K/V and O's addresses.
        fetch_go, listed = go, None
        if self.has_lists:
            fetch_go, listed = self._load_lists(m, go, run, addr, L, Lq, list_req, reader.words)
        with m.If(reader.req.valid & reader.req.ready):
            m.d.sync += self.bytes_read.eq(self.bytes_read + reader.req.payload.length)

        # Q: per K/V head, its group's stacked rows (head x mod g at position x div g), in blocks of rows.
        q_rows = _StackedRows(m, "q_rows", A, addr["q_base"], addr["q_row_stride"], addr["q_head_stride"],
                              group, Lq, H_kv, R)
        q_slot = Signal()
        q_addr, q_placed = q_rows.addr, Const(1)
        if listed is not None:
            q_addr, q_placed = listed.place(m, "q_place", *(addr[f"q_{f}"] for f in _ADDRESS_FIELDS), q_rows.position, q_rows.hk, q_rows.addr, fetch_go,
                                            q_rows.advance, by_token=0)
        m.d.comb += [q_rows.start.eq(fetch_go),
                     q_req.valid.eq(q_rows.active & q_placed & (ahead(q_fetched, q_released) < 2)),
                     q_req.payload.addr.eq(q_addr), q_req.payload.length.eq(d),
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
            scan = Signal()   # a scan-pass tile of an importance run re-read per block: K only
            kv_addr, kv_placed = row_addr, Const(1)
            if listed is not None:
                kv_addr, kv_placed = listed.place(m, "kv_place", *(Mux(phase_v, addr[f"v_{f}"], addr[f"k_{f}"])
                                                                  for f in _ADDRESS_FIELDS), t0 + lane, hk, row_addr,
                                                  fetch_go, kv_req.valid & kv_req.ready, by_token=1)
            m.d.comb += [kv_req.valid.eq(kv_active & kv_placed & (ahead(kv_fetched, kv_released) < S)),
                         kv_req.payload.addr.eq(kv_addr), kv_req.payload.length.eq(Mux(phase_v, d, k_length)),
                         kv_req.payload.tag.kind.eq(Mux(phase_v, _V, _K)), kv_req.payload.tag.bank.eq(lane),
                         kv_req.payload.tag.slot.eq(slot),
                         kv_req.payload.tag.end.eq((phase_v | scan) & (lane == count - 1))]
            k_row, v_row = addr["k_row_stride"], addr["v_row_stride"]
            with m.If(fetch_go):
                m.d.sync += [kv_active.eq(1), phase_v.eq(0), hk.eq(0), passed_rows.eq(0), t0.eq(0), lane.eq(0),
                             scan.eq(scan_run),
                             slot.eq(0), k_head_addr.eq(addr["k_base"]), v_head_addr.eq(addr["v_base"]),
                             k_tile_addr.eq(addr["k_base"]), v_tile_addr.eq(addr["v_base"]), row_addr.eq(addr["k_base"])]
            with m.Elif(kv_req.valid & kv_req.ready):
                with m.If(lane != count - 1):
                    m.d.sync += [lane.eq(lane + 1), row_addr.eq(row_addr + Mux(phase_v, v_row, k_row))]
                with m.Elif(~phase_v & ~scan):
                    # The next tile's K starts one row past this tile's last.
                    m.d.sync += [lane.eq(0), phase_v.eq(1), row_addr.eq(v_tile_addr), k_tile_addr.eq(row_addr + k_row)]
                with m.Else():
                    m.d.sync += [lane.eq(0), phase_v.eq(0), kv_fetched.eq(kv_fetched + 1),
                                 slot.eq(Mux(slot == S - 1, 0, slot + 1))]
                    with m.If((t0 + C < L) & scan):
                        m.d.sync += [t0.eq(t0 + C), row_addr.eq(row_addr + k_row)]
                    with m.Elif(t0 + C < L):
                        m.d.sync += [t0.eq(t0 + C), v_tile_addr.eq(row_addr + v_row), row_addr.eq(k_tile_addr)]
                    with m.Elif(scan):
                        # The block's computing pass: its tiles again, K and V.
                        m.d.sync += [t0.eq(0), scan.eq(0), k_tile_addr.eq(k_head_addr), v_tile_addr.eq(v_head_addr),
                                     row_addr.eq(k_head_addr)]
                    with m.Elif(~fits & (passed_rows + R < stacked)):
                        # Another query block: the head's tiles again.
                        m.d.sync += [t0.eq(0), passed_rows.eq(passed_rows + R), k_tile_addr.eq(k_head_addr),
                                     v_tile_addr.eq(v_head_addr), row_addr.eq(k_head_addr), scan.eq(scan_run)]
                    with m.Else():
                        next_k, next_v = k_head_addr + addr["k_head_stride"], v_head_addr + addr["v_head_stride"]
                        m.d.sync += [t0.eq(0), passed_rows.eq(0), hk.eq(hk + 1), k_head_addr.eq(next_k), scan.eq(scan_run),
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
        with m.If(row_landed & (landed.tag.kind != _Q)):   # a tile ends with its V rows (K alone in a scan pass)
            m.d.sync += kv_filled.eq(kv_filled + 1)

        # --- emit: Q columns, K columns, V row pieces, each a read of the banks and a register.
        q_emit = _ColumnEmitter(m, "q_emit", self.q, q_banks, d, G, stride)
        m.d.comb += [q_emit.start.eq(go), q_emit.available.eq(ahead(q_filled, q_emit.block) != 0)]
        with m.If(q_emit.block_done):
            m.d.sync += q_released.eq(q_released + 1)

        walk_k = _TileWalk(m, "k_walk", L, C, R, S, stacked, fits, H_kv, go, self.max_seq_len,
                           tile_counts if self.sparse else None, two_passes=imp_run)
        k_emit = _ColumnEmitter(m, "k_emit", self.k, k_banks, d, G, stride, walk=walk_k,
                                msb_bits=msb_bits if self.progressive else None, msb_mask=msb_mask)
        m.d.comb += [k_emit.start.eq(go), k_emit.available.eq(ahead(kv_filled, walk_k.tile) != 0)]

        walk_v = _TileWalk(m, "v_walk", L, C, R, S, stacked, fits, H_kv, go, self.max_seq_len,
                           tile_counts if self.sparse else None,
                           skip_scan=scan_run if self.importance_widths is not None else None, lead=walk_k.tile)
        v_emit = _PieceEmitter(m, "v_emit", self.v, v_banks, words, walk_v, L, C, stride)
        m.d.comb += [v_emit.start.eq(go), v_emit.available.eq(ahead(kv_filled, walk_v.tile) != 0)]
        with m.If((walk_v.advance & (~fits | walk_v.last_block)) | walk_v.skipped):
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
        o_words = stream.Signature(8 * G).create()
        o_out = _RowWordEmitter(m, "o_out", o_words, o_banks, words, stacked, H_kv, R, stride)
        m.d.comb += [o_out.start.eq(go), o_out.available.eq(ahead(o_filled, o_released) != 0)]
        with m.If(o_out.block_done):
            m.d.sync += o_released.eq(o_released + 1)
        o_req_valid = o_rows.active & (ahead(o_filled, o_blocks_requested) != 0)
        o_addr, o_placed = o_rows.addr, Const(1)
        if listed is not None:
            o_addr, o_placed = listed.place(m, "o_place", *(addr[f"o_{f}"] for f in _ADDRESS_FIELDS), o_rows.position, o_rows.hk, o_rows.addr, fetch_go,
                                            o_rows.advance, by_token=0)
        o_req_valid = o_req_valid & o_placed
        m.d.comb += o_rows.start.eq(fetch_go)
        with m.If(go):
            m.d.sync += o_blocks_requested.eq(0)
        with m.Elif(o_rows.advance & o_rows.block_end):
            m.d.sync += o_blocks_requested.eq(o_blocks_requested + 1)
        with m.If(writer.req.valid & writer.req.ready):
            m.d.sync += self.bytes_written.eq(self.bytes_written + writer.req.payload.length)

        sides_done = Signal(init=1)
        if not sides:
            wiring.connect(m, o_words, writer.words)
            m.d.comb += [writer.req.valid.eq(o_req_valid), writer.req.payload.addr.eq(o_addr),
                         writer.req.payload.length.eq(d), o_rows.advance.eq(writer.req.valid & writer.req.ready)]
        else:
            side = _SideWrites(m, G, A, writer)
            if self.importance_widths is not None:
                self._importance_sources(m, side, go, addr, L, imp_run)
            if self.progressive:
                self._row_flag_source(m, side, go, addr, Lq)
            side.arbitrate(m, go, o_req_valid, o_rows, o_addr, d, o_words, o_out.row_taken, self.outstanding)
            m.d.comb += sides_done.eq(side.done)

        finishing = Signal()
        with m.If(go):
            m.d.sync += finishing.eq(1)
        with m.If(finishing & ~o_out.active & ~o_rows.active & sides_done & writer.idle & ~go):
            m.d.sync += [finishing.eq(0), self.busy.eq(0), self.done.eq(1)]
        return m

    def _importance_sources(self, m: Module, side, go, addr, seq_len, imp_run):
        """An importance run's token importances (a row of ``cols`` values per beat, in key order from
        ``token_importance_base``) and head importances (one value per head from ``head_importance_base``)."""
        C = self.cols
        tb, hb = self.importance_bytes
        tok, heads = self.token_importance, self.head_importance
        tok_addr, head_addr = Signal(self.addr_width, name="tok_addr"), Signal(self.addr_width, name="head_imp_addr")
        tok_left = Signal.like(seq_len, name="tok_left")
        beat = Signal(data.ArrayLayout(unsigned(8 * tb), C), name="tok_beat")
        head = Signal(8 * hb, name="head_imp")
        count = Mux(tok_left < C, tok_left, C)
        t = side.source("token_importance", tok, beat.as_value(), tok_addr, count * tb, C * tb,
                        lambda payload: [beat[c].eq(payload.data[c]) for c in range(C)])
        h = side.source("head_importance", heads, head, head_addr, hb, hb, lambda payload: [head.eq(payload.data)])
        with m.If(go):
            m.d.sync += [tok_addr.eq(addr["token_importance_base"]), head_addr.eq(addr["head_importance_base"]),
                         tok_left.eq(seq_len)]
            # Only an importance run sends them.
            m.d.sync += [t.ended.eq(~imp_run), h.ended.eq(~imp_run)]
        with m.If(t.written):
            m.d.sync += [tok_addr.eq(tok_addr + C * tb), tok_left.eq(tok_left - count)]
        with m.If(h.written):
            m.d.sync += head_addr.eq(head_addr + hb)

    def _row_flag_source(self, m: Module, side, go, addr, query_len):
        """Row flags: one byte per query row (1: below the threshold), heads after each other from
        ``row_flags_base``, a row of up to ``rows`` bytes per beat."""
        R = self.rows
        flags_addr = Signal(self.addr_width, name="flags_addr")
        position = Signal.like(query_len, name="flags_position")
        beat = Signal(R, name="flags_beat")
        left = query_len - position
        count = Mux(left < R, left, R)
        f = side.source("row_flags", self.row_flags, Cat(Cat(beat[r], Const(0, 7)) for r in range(R)), flags_addr,
                        count, R, lambda payload: [beat.eq(payload.flags)])
        with m.If(go):
            m.d.sync += [flags_addr.eq(addr["row_flags_base"]), position.eq(0), f.ended.eq(0)]
        with m.If(f.written):
            m.d.sync += [flags_addr.eq(flags_addr + count), position.eq(Mux(left <= R, 0, position + R))]


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
        self.position = position = Signal.like(query_len, name=f"{name}_position")
        self.hk = hk = Signal.like(kv_heads, name=f"{name}_hk")
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
                 max_seq_len: int, tile_counts=None, two_passes=None, skip_scan=None, lead=None):
        self.advance = Signal(name=f"{name}_advance")
        self.skipping = Const(0)
        self.skipped = Const(0)
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
        second = Signal(name=f"{name}_second")       # K of an importance run: the block's computing pass
        block_start = []
        if skip_scan is not None:
            # V of an importance run whose tiles are re-read per block: the block's scan-pass tiles (K only)
            # come first in the ring; each is stepped over (and released) once K has passed it.
            self.skipping, self.skipped = Signal(name=f"{name}_skipping"), Signal(name=f"{name}_skipped")
            block_start = [self.skipping.eq(skip_scan)]
            m.d.comb += self.skipped.eq(self.active & self.skipping & ((lead - self.tile)[:_COUNT_BITS] != 0))
        with m.If(go):
            m.d.sync += [self.active.eq(1), self.tile.eq(0), self.slot.eq(0), self.t0.eq(0), head_tile.eq(0),
                         head_slot.eq(0), block_rows.eq(0), hk.eq(0), second.eq(0), *block_start]
        if skip_scan is not None:
            with m.Elif(self.skipped):
                m.d.sync += [self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
                with m.If(self.t0 + cols < seq_len):
                    m.d.sync += self.t0.eq(self.t0 + cols)
                with m.Else():
                    m.d.sync += [self.t0.eq(0), self.skipping.eq(0)]
        with m.Elif(self.advance):
            with m.If(self.t0 + cols < seq_len):
                m.d.sync += [self.t0.eq(self.t0 + cols), self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
            with m.Elif((two_passes if two_passes is not None else 0) & ~second):
                m.d.sync += [self.t0.eq(0), second.eq(1)]
                with m.If(fits):
                    m.d.sync += [self.tile.eq(head_tile), self.slot.eq(head_slot)]
                with m.Else():
                    m.d.sync += [self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
            with m.Elif(~self.last_block):
                m.d.sync += [self.t0.eq(0), block_rows.eq(block_rows + rows), second.eq(0), *block_start]
                with m.If(fits):
                    m.d.sync += [self.tile.eq(head_tile), self.slot.eq(head_slot)]
                with m.Else():
                    m.d.sync += [self.tile.eq(self.tile + 1), self.slot.eq(next_slot)]
            with m.Else():
                m.d.sync += [self.t0.eq(0), block_rows.eq(0), self.tile.eq(self.tile + 1), self.slot.eq(next_slot),
                             head_tile.eq(self.tile + 1), head_slot.eq(next_slot), hk.eq(hk + 1), second.eq(0),
                             *block_start]
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
    return move, held


class _ColumnEmitter:
    """Beats of columns: beat ``k`` takes byte ``k mod cols`` of word ``k div cols`` of every bank (Q of a
    block, or K of a tile); ``d`` beats per block or tile."""

    def __init__(self, m: Module, name: str, out, banks, head_dim, word_bytes: int, stride: int, walk=None,
                 msb_bits=None, msb_mask=None):
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
        side = {"byte": byte}
        if msb_bits is not None:
            # K's MSB plane: element k is the msb_bits-bit field at bit k·msb_bits of the packed row; shifted
            # up to the lane's top bits, the rest cleared (the floored value).
            lift = Signal(3, name=f"{name}_lift")
            side["lift"] = lift
        move, _ = _emit_register(m, name, out, issue, lambda held: Cat(
            self._lane(bank.read.data.word_select(held["byte"], 8), held.get("lift"), msb_mask) for bank in banks),
            side)
        step = issue & move
        last = k == head_dim - 1
        for bank in banks:
            m.d.comb += [bank.read.addr.eq(slot * stride + word), bank.read.en.eq(move)]
        m.d.comb += self.block_done.eq(step & last)
        if walk is not None:
            m.d.comb += walk.advance.eq(step & last)
        first_lift = [] if msb_bits is None else [side["lift"].eq(8 - msb_bits)]
        with m.If(self.start):
            m.d.sync += [active.eq(1), k.eq(0), byte.eq(0), word.eq(0), self.block.eq(0), *first_lift]
            if walk is None:
                m.d.sync += slot.eq(0)
        with m.Elif(step):
            with m.If(last):
                m.d.sync += [k.eq(0), byte.eq(0), word.eq(0), self.block.eq(self.block + 1), *first_lift]
                if walk is None:
                    m.d.sync += slot.eq(~slot)
            with m.Else():
                m.d.sync += k.eq(k + 1)
                next_byte = Signal(name=f"{name}_next_byte")
                if msb_bits is None:
                    m.d.comb += next_byte.eq(1)
                else:
                    # The byte's last field (its top bits) is lifted by 0.
                    m.d.comb += next_byte.eq(side["lift"] < msb_bits)
                    with m.If(next_byte):
                        m.d.sync += first_lift
                    with m.Else():
                        m.d.sync += side["lift"].eq(side["lift"] - msb_bits)
                with m.If(next_byte):
                    with m.If(byte == word_bytes - 1):
                        m.d.sync += [byte.eq(0), word.eq(word + 1)]
                    with m.Else():
                        m.d.sync += byte.eq(byte + 1)

    @staticmethod
    def _lane(byte, lift, mask):
        if lift is None:
            return byte
        return (byte << lift)[:8] & mask


class _PieceEmitter:
    """V beats: per tile, per word ``w`` of the rows, per key ``c`` of the tile: word ``w`` of bank ``c``."""

    def __init__(self, m: Module, name: str, out, banks, words, walk, seq_len, cols: int, stride: int):
        self.start, self.available = Signal(name=f"{name}_start"), Signal(name=f"{name}_available")
        key = Signal(range(cols), name=f"{name}_key")
        word = Signal(range(stride + 1), name=f"{name}_word")
        issue = walk.active & ~walk.skipping & self.available
        move, _ = _emit_register(m, name, out, issue, lambda held: Cat(
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
        row_end = Signal(name=f"{name}_row_end")
        move, held = _emit_register(m, name, out, issue, lambda held: Cat(
            bank.read.data for bank in banks).word_select(held["row"], len(banks[0].read.data)),
            {"row": row, "row_end": row_end})
        step = issue & move
        # A row's last word taken by the writer: the writer owes no more words of it.
        self.row_taken = Signal(name=f"{name}_row_taken")
        m.d.comb += [self.row_taken.eq(out.valid & out.ready & held["row_end"]), row_end.eq(word == words - 1)]
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


class _SideSource:
    """One side stream: a beat held (``held``), its row (``addr``, ``length`` bytes of ``value``), ``written``
    the cycle its last word is taken, ``ended`` once the run's last beat came (or none will)."""

    def __init__(self, name: str, value, addr, length, max_length: int):
        self.held, self.written = Signal(name=f"{name}_held"), Signal(name=f"{name}_written")
        self.ended = Signal(init=1, name=f"{name}_ended")
        self.value, self.addr, self.length, self.max_length = value, addr, length, max_length


class _SideWrites:
    """Short rows from the engine's side streams (row flags, importances) through O's writer.

    Each source holds one beat. While one is held, O's row requests pause; once
    the writer owes no word of an O row already requested, the held beat goes
    out whole (its request, then its few words), the first held source first,
    and O goes on.  A side stream's beats are rare (one per query block at
    most), so O loses a few cycles per beat."""

    def __init__(self, m: Module, word_bytes: int, addr_width: int, writer):
        self.m, self.G, self.A, self.writer = m, word_bytes, addr_width, writer
        self.sources: list[_SideSource] = []

    def source(self, name: str, port, value, addr, length, max_length: int, take) -> _SideSource:
        m = self.m
        src = _SideSource(name, value, addr, length, max_length)
        m.d.comb += port.ready.eq(~src.held)
        with m.If(port.valid & port.ready):
            m.d.sync += [src.held.eq(1), *take(port.payload)]
            with m.If(port.payload.last):
                m.d.sync += src.ended.eq(1)
        with m.If(src.written):
            m.d.sync += src.held.eq(0)
        self.sources.append(src)
        return src

    @property
    def done(self):
        return Cat(s.ended & ~s.held for s in self.sources).all()

    def arbitrate(self, m: Module, go, o_req_valid, o_rows, o_addr, o_length, o_words, o_row_taken, outstanding: int):
        G, writer, sources = self.G, self.writer, self.sources
        active, req_sent = Signal(name="side_active"), Signal(name="side_req_sent")
        sel = Signal(range(max(2, len(sources))), name="side_sel")
        most_words = max(-(-s.max_length // G) for s in sources)
        word = Signal(range(most_words + 1), name="side_word")
        owed = Signal(range(2 * outstanding + 2), name="o_rows_owed")   # O rows requested, words not all taken
        want = Cat(s.held for s in sources).any()

        def chosen(values):
            out = values[-1]
            for i in reversed(range(len(values) - 1)):
                out = Mux(sel == i, values[i], out)
            return out

        width = 8 * G * most_words
        value = chosen([Value.cast(s.value).as_unsigned() for s in sources])
        padded = Signal(width, name="side_value")
        m.d.comb += padded.eq(value)
        length = chosen([s.length for s in sources])
        words = Signal(range(most_words + 1), name="side_words")
        m.d.comb += words.eq(sum(Cat(length > j * G for j in range(most_words))))
        o_fire = o_req_valid & ~want & ~active & writer.req.ready
        m.d.comb += [
            writer.req.valid.eq(Mux(active, ~req_sent, o_req_valid & ~want)),
            writer.req.payload.addr.eq(Mux(active, chosen([s.addr for s in sources]), o_addr)),
            writer.req.payload.length.eq(Mux(active, length, o_length)),
            o_rows.advance.eq(o_fire),
            writer.words.valid.eq(Mux(active, req_sent, o_words.valid)),
            writer.words.payload.eq(Mux(active, padded.word_select(word, 8 * G), o_words.payload)),
            o_words.ready.eq(writer.words.ready & ~active),
        ]
        m.d.sync += owed.eq(owed + o_fire - o_row_taken)
        with m.If(~active & want & (owed == 0)):
            m.d.sync += [active.eq(1), req_sent.eq(0), word.eq(0)]
            for i in reversed(range(len(sources))):
                with m.If(sources[i].held):
                    m.d.sync += sel.eq(i)
        with m.If(active & ~req_sent & writer.req.ready):
            m.d.sync += req_sent.eq(1)
        taken = active & req_sent & writer.words.ready
        with m.If(taken):
            m.d.sync += word.eq(word + 1)
            with m.If(word == words - 1):
                m.d.sync += active.eq(0)
                m.d.comb += [s.written.eq(sel == i) for i, s in enumerate(sources)]
        with m.If(go):
            m.d.sync += owed.eq(0)


class _Lists:
    """A run's token list (a memory of ``entries`` uint16 per word) and head list (registers), and
    :meth:`place`: a row's address through them."""

    def __init__(self, m: Module, dma: EngineDMA, entries: int, uses):
        self.entries, self.uses, self.dma = entries, uses, dma
        m.submodules.token_list = self.memory = memory.Memory(
            shape=unsigned(16 * entries), depth=-(-dma.max_seq_len // entries), init=[])
        self.token_write = self.memory.write_port(granularity=8)
        self.heads = [Signal(16, name=f"head_list_{h}", reset_less=True) for h in range(dma.max_heads)]

    def place(self, m: Module, name: str, base, row_stride, head_stride, position, head, fallback, start, advance,
              by_token: int):
        """``(addr, placed)``: row ``position`` of head ``head`` at ``base + head'·head_stride +
        position'·row_stride``, each index through its list when the run uses it (bit ``by_token`` of
        ``lists`` for the token list, bit 2 for the head list); ``placed`` once the address has settled
        after ``start`` or ``advance`` (the walker's state changed).  Without lists, ``fallback``."""
        E, A = self.entries, self.dma.addr_width
        read = self.memory.read_port(domain="sync", transparent_for=())
        m.d.comb += [read.addr.eq(position >> (E.bit_length() - 1)), read.en.eq(1)]
        sub = position[:E.bit_length() - 1] if E > 1 else Const(0)
        token, head_index = Signal(16, name=f"{name}_token"), Signal(16, name=f"{name}_head")
        head_entry = Const(0, 16)
        for h in reversed(range(len(self.heads))):
            head_entry = Mux(head == h, self.heads[h], head_entry)
        m.d.sync += [token.eq(Mux(self.uses[by_token], read.data.word_select(sub, 16), position)),
                     head_index.eq(Mux(self.uses[2], head_entry, head))]
        row_part, head_part, addr = (Signal(A, name=f"{name}_{n}", reset_less=True) for n in ("row", "head_off", "addr"))
        m.d.sync += [row_part.eq((token * row_stride)[:A]), head_part.eq((head_index * head_stride)[:A]),
                     addr.eq(base + head_part + row_part)]
        settle = Signal(range(_PLACE_LATENCY + 1), name=f"{name}_settle")
        with m.If(start | advance):
            m.d.sync += settle.eq(_PLACE_LATENCY)
        with m.Elif(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        listed = self.uses != 0
        return Mux(listed, addr, fallback), ~listed | (settle == 0)
