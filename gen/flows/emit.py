"""Verilog emission with every operand width explicit.

Amaranth's own ``verilog.convert`` hands its RTLIL to Yosys's ``write_verilog``, which prints each
cell as one Verilog operator over its operands as they are: ``acc + product`` with a 16-bit product
added into a 32-bit sum, ``count < 4'h9`` beside an 8-bit count, ``flag <= !vector``. That is
correct Verilog (the language extends operands by its context rules), but Verilator's ``-Wall``
reports each one as WIDTHEXPAND or WIDTHTRUNC, hundreds per top level, and a width warning that
means nothing hides the one that means a bug.

This module emits through the same Yosys passes as Amaranth (``proc -nomux -norom``,
``memory_collect``, ``write_verilog -norename``) with one ``techmap`` in between that rewrites every
cell whose operands differ in width into the same cell over operands already extended (or, where
only the low bits matter, sliced) to the result's width, so the printed operator needs no implicit
extension. The extension follows the cell's own semantics (signed only when the Yosys cell treats
it so), so the logic is unchanged; the whole test suite simulates this output.
"""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil

from attn_rtl.constraints import FOLDER as CONSTRAINTS_FOLDER

__all__ = ["convert", "widening_techmap", "LINT_WAIVERS"]

#: Verilator configuration waiving what the output style causes (constraints/verilator_waivers.vlt);
#: written beside every generated core.
LINT_WAIVERS = (CONSTRAINTS_FOLDER / "verilator_waivers.vlt").read_text()

#: Binary cells whose result bits depend only on operand bits at or below them: operands are
#: extended or sliced to the result width.
_LOW_BITS_BINARY = ("add", "sub", "mul", "and", "or", "xor", "xnor")
#: Binary cells with a one-bit result: both operands are extended to the wider one.
_COMPARES = ("eq", "ne", "lt", "le", "gt", "ge", "logic_and", "logic_or")
#: Unary cells whose result bits depend only on operand bits at or below them.
_LOW_BITS_UNARY = ("not", "neg", "pos")
#: Unary cells with a one-bit result.
_REDUCTIONS = ("reduce_and", "reduce_or", "reduce_xor", "reduce_xnor", "reduce_bool", "logic_not")
#: Shifts: the operand is extended to the wider of it and the result, shifted at that width, sliced.
_SHIFTS = ("shl", "sshl", "shr", "sshr", "shift")

_PORTS_BINARY = """\
  parameter A_SIGNED = 0;
  parameter B_SIGNED = 0;
  parameter A_WIDTH = 1;
  parameter B_WIDTH = 1;
  parameter Y_WIDTH = 1;
  input [A_WIDTH-1:0] A;
  input [B_WIDTH-1:0] B;
  output [Y_WIDTH-1:0] Y;
"""

_PORTS_UNARY = """\
  parameter A_SIGNED = 0;
  parameter A_WIDTH = 1;
  parameter Y_WIDTH = 1;
  input [A_WIDTH-1:0] A;
  output [Y_WIDTH-1:0] Y;
"""


def _resize(src: str, dst: str, width: str, signed: str) -> str:
    """Drive ``dst`` (``width`` bits) from port ``src``: its low bits, or it extended by ``signed``."""
    return (f"    if ({src}_WIDTH == 0) assign {dst} = {{{width}{{1'b0}}}};\n"
            f"    else if ({src}_WIDTH >= {width}) assign {dst} = {src}[{width}-1:0];\n"
            f"    else if ({signed}) assign {dst} = {{{{({width}-{src}_WIDTH){{{src}[{src}_WIDTH-1]}}}}, {src}}};\n"
            f"    else assign {dst} = {{{{({width}-{src}_WIDTH){{1'b0}}}}, {src}}};\n")


def _module(cell: str, ports: str, body: str) -> str:
    names = "A, B, Y" if "B_WIDTH" in ports else "A, Y"
    return f'(* techmap_celltype = "${cell}" *)\nmodule _attn_widen_{cell} ({names});\n{ports}{body}endmodule\n'


def _instance(cell: str, params: dict[str, str], conns: dict[str, str]) -> str:
    p = ", ".join(f".{k}({v})" for k, v in params.items())
    c = ", ".join(f".{k}({v})" for k, v in conns.items())
    return f"  \\${cell} #({p}) _TECHMAP_REPLACE_ ({c});\n"


def _low_bits_binary(cell: str) -> str:
    signed = "A_SIGNED && B_SIGNED"
    body = ("  wire _TECHMAP_FAIL_ = A_WIDTH == Y_WIDTH && B_WIDTH == Y_WIDTH;\n"
            "  wire [Y_WIDTH-1:0] a, b;\n  generate\n"
            + _resize("A", "a", "Y_WIDTH", signed) + _resize("B", "b", "Y_WIDTH", signed) + "  endgenerate\n"
            + _instance(cell, {"A_SIGNED": signed, "B_SIGNED": signed, "A_WIDTH": "Y_WIDTH",
                               "B_WIDTH": "Y_WIDTH", "Y_WIDTH": "Y_WIDTH"}, {"A": "a", "B": "b", "Y": "Y"}))
    return _module(cell, _PORTS_BINARY, body)


def _compare(cell: str) -> str:
    signed = "A_SIGNED && B_SIGNED"
    body = ("  localparam W = A_WIDTH > B_WIDTH ? A_WIDTH : B_WIDTH;\n"
            "  wire _TECHMAP_FAIL_ = A_WIDTH == B_WIDTH && Y_WIDTH == 1;\n"
            "  wire [W-1:0] a, b;\n  wire y;\n  generate\n"
            + _resize("A", "a", "W", signed) + _resize("B", "b", "W", signed)
            + "    if (Y_WIDTH > 1) assign Y = {{(Y_WIDTH-1){1'b0}}, y};\n    else assign Y = y;\n"
            + "  endgenerate\n"
            + _instance(cell, {"A_SIGNED": signed, "B_SIGNED": signed, "A_WIDTH": "W", "B_WIDTH": "W",
                               "Y_WIDTH": "1"}, {"A": "a", "B": "b", "Y": "y"}))
    return _module(cell, _PORTS_BINARY, body)


def _low_bits_unary(cell: str) -> str:
    body = ("  wire _TECHMAP_FAIL_ = A_WIDTH == Y_WIDTH;\n"
            "  wire [Y_WIDTH-1:0] a;\n  generate\n" + _resize("A", "a", "Y_WIDTH", "A_SIGNED") + "  endgenerate\n"
            + _instance(cell, {"A_SIGNED": "A_SIGNED", "A_WIDTH": "Y_WIDTH", "Y_WIDTH": "Y_WIDTH"},
                        {"A": "a", "Y": "Y"}))
    return _module(cell, _PORTS_UNARY, body)


def _reduction(cell: str) -> str:
    # A vector under `!` is first reduced with `|`, so every printed operator sees one-bit
    # or whole-vector operands of the width it expects.
    if cell == "logic_not":
        body = ("  wire _TECHMAP_FAIL_ = A_WIDTH == 1 && Y_WIDTH == 1;\n  wire any, y;\n"
                + _instance("reduce_or", {"A_SIGNED": "0", "A_WIDTH": "A_WIDTH", "Y_WIDTH": "1"},
                            {"A": "A", "Y": "any"}).replace("_TECHMAP_REPLACE_", "any_bit")
                + "  assign y = ~any;\n")
    else:
        body = ("  wire _TECHMAP_FAIL_ = Y_WIDTH == 1;\n  wire y;\n"
                + _instance(cell, {"A_SIGNED": "A_SIGNED", "A_WIDTH": "A_WIDTH", "Y_WIDTH": "1"},
                            {"A": "A", "Y": "y"}))
    body += ("  generate\n    if (Y_WIDTH > 1) assign Y = {{(Y_WIDTH-1){1'b0}}, y};\n"
             "    else assign Y = y;\n  endgenerate\n")
    return _module(cell, _PORTS_UNARY, body)


def _shift(cell: str) -> str:
    body = ("  localparam W = A_WIDTH > Y_WIDTH ? A_WIDTH : Y_WIDTH;\n"
            "  wire _TECHMAP_FAIL_ = A_WIDTH == Y_WIDTH;\n"
            "  wire [W-1:0] a, y;\n  generate\n" + _resize("A", "a", "W", "A_SIGNED") + "  endgenerate\n"
            + _instance(cell, {"A_SIGNED": "A_SIGNED", "B_SIGNED": "B_SIGNED", "A_WIDTH": "W",
                               "B_WIDTH": "B_WIDTH", "Y_WIDTH": "W"}, {"A": "a", "B": "B", "Y": "y"})
            + "  assign Y = y[Y_WIDTH-1:0];\n")
    return _module(cell, _PORTS_BINARY, body)


@cache
def widening_techmap() -> str:
    """The techmap library (Verilog) that makes every listed cell's operand widths explicit."""
    modules = ([_low_bits_binary(c) for c in _LOW_BITS_BINARY] + [_compare(c) for c in _COMPARES]
               + [_low_bits_unary(c) for c in _LOW_BITS_UNARY] + [_reduction(c) for c in _REDUCTIONS]
               + [_shift(c) for c in _SHIFTS])
    return "\n".join(modules)


def convert(component, *, name: str) -> str:
    """Verilog of ``component`` (a ``wiring.Component``) as module ``name``, operand widths explicit."""
    from .synth import _first_run_lock, _yosys, _yowasp_env

    rtlil_text = rtlil.convert(component, name=name, emit_src=False)
    env = _yowasp_env()
    with tempfile.TemporaryDirectory(prefix="attn-emit-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil_text)
        (work / "widen.v").write_text(widening_techmap())
        # Processes become multiplexers (pmuxtree: no `casez` functions, which Verilator reports as
        # overlapping cases); opt_expr -fine folds comparisons a narrow operand decides (`x <= 4'hf`
        # of a 4-bit x), which lint reports as constant; opt_clean drops what the techmap leaves.
        script = ["read_rtlil design.il", "proc -norom", "opt_expr -fine", "opt_clean", "pmuxtree",
                  "memory_collect", "techmap -map widen.v", "opt_clean", "attrmap -remove src",
                  "write_rtlil mapped.il"]
        with _first_run_lock(env):
            run = subprocess.run([_yosys(), "-q", "-p", "; ".join(script)], cwd=work, env=env,
                                 capture_output=True, text=True)
        if run.returncode != 0:
            tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"yosys could not write the Verilog of {name}:\n{tail}")
        mapped = (work / "mapped.il").read_text()
    # The Verilog itself is written by Amaranth's own Yosys, as `verilog.convert` does: YoWASP
    # Yosys 0.70 declares signed ports `signed`, and ABC9 in synth_ecp5 then traps on the
    # ECP5-primitive array (tests/test_synthesis.py).
    return _amaranth_write_verilog(mapped)


def _amaranth_write_verilog(rtlil_text: str) -> str:
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    return yosys.run(["-q", "-"], f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil\nwrite_verilog -norename",
                     ignore_warnings=True)
