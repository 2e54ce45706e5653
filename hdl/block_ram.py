"""A simple dual-port RAM whose read data leaves a register: ECP5 DP16KD with its output register, or any RAM."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, Value, unsigned
from amaranth.lib import memory

__all__ = ["BLOCK_RAM_KINDS", "EBR_DEPTH", "EBR_WIDTH", "check_block_ram_kind", "registered_ram"]

#: ``ecp5``: DP16KD instances (simulation needs ``hdl/models/DP16KD.v``); ``inferred``: an Amaranth
#: memory and a register after its read port, mapped as synthesis sees fit.
BLOCK_RAM_KINDS = ("inferred", "ecp5")
#: Words and bits of one DP16KD in the 18-bit mode used here.
EBR_DEPTH, EBR_WIDTH = 1024, 18


def check_block_ram_kind(kind, name: str = "memory") -> str:
    """``kind`` if it is one of :data:`BLOCK_RAM_KINDS`, else a ``ValueError`` naming it."""
    if kind not in BLOCK_RAM_KINDS:
        raise ValueError(f"{name} must be one of {', '.join(BLOCK_RAM_KINDS)}, not {kind!r}")
    return kind


def registered_ram(m: Module, name: str, *, kind: str, depth: int, w_addr, w_data, w_en, r_addr,
                   r_enable=Const(1), attrs: dict | None = None) -> Value:
    """The word at ``r_addr`` two cycles later: the address is registered every cycle, and the word
    then loaded into an output register when ``r_enable`` (which holds it otherwise).

    Yosys maps an inferred ECP5 block RAM without its output register (REGMODE NOREG), and the
    RAM's unregistered output takes 5.8 ns (LFE5U-85F-6) before any routing; with ``kind ==
    "ecp5"`` the DP16KD's own output register (REGMODE_B OUTREG, its enable OCEB) holds the word,
    so the data leaves a flip-flop in the RAM.  Port A writes, port B reads; a word read while it
    is written reads the old word.  ``attrs`` go to an inferred memory (e.g. Yosys's
    ``no_rw_check`` where a word is never read as it is written).
    """
    w_data = Value.cast(w_data)
    width = len(w_data)
    read = Signal(width, name=f"{name}_read")
    if kind != "ecp5":
        mem = memory.Memory(shape=unsigned(width), depth=depth, init=[], attrs=attrs or {})
        m.submodules[name] = mem
        wr, rd = mem.write_port(), mem.read_port(domain="sync", transparent_for=())
        m.d.comb += [wr.addr.eq(w_addr), wr.data.eq(w_data), wr.en.eq(w_en), rd.addr.eq(r_addr), rd.en.eq(1)]
        with m.If(r_enable):
            m.d.sync += read.eq(rd.data)
        return read
    if depth > EBR_DEPTH:
        raise ValueError(f"an ecp5 block RAM holds at most {EBR_DEPTH} words, not {depth}")
    w_word, r_word = Signal(10, name=f"{name}_w_addr"), Signal(10, name=f"{name}_r_addr")
    m.d.comb += [w_word.eq(w_addr), r_word.eq(r_addr)]
    for n, lo in enumerate(range(0, width, EBR_WIDTH)):
        bits = min(EBR_WIDTH, width - lo)
        data_in, data_out = Signal(EBR_WIDTH, name=f"{name}{n}_di"), Signal(EBR_WIDTH, name=f"{name}{n}_do")
        m.d.comb += [data_in.eq(w_data[lo:lo + bits]), read[lo:lo + bits].eq(data_out[:bits])]
        m.submodules[f"{name}{n}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=EBR_WIDTH, p_DATA_WIDTH_B=EBR_WIDTH, p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
            **{f"i_DIA{i}": data_in[i] for i in range(EBR_WIDTH)},
            # 18-bit mode: ADA1/ADA0 are the byte enables, the word address is ADA13..ADA4.
            i_ADA0=Const(1), i_ADA1=Const(1),
            **{f"i_ADA{i + 4}": w_word[i] for i in range(10)},
            i_CLKA=ClockSignal(), i_CEA=Const(1), i_WEA=w_en,
            i_CSA0=Const(0), i_CSA1=Const(0), i_CSA2=Const(0),
            **{f"i_ADB{i + 4}": r_word[i] for i in range(10)},
            i_CLKB=ClockSignal(), i_CEB=Const(1), i_OCEB=r_enable, i_WEB=Const(0),
            i_CSB0=Const(0), i_CSB1=Const(0), i_CSB2=Const(0),
            **{f"o_DOB{i}": data_out[i] for i in range(EBR_WIDTH)},
        )
    return read
