"""The emitter (gen/flows/emit.py) changes how widths are written, never what the logic computes.

Every operator Amaranth lowers to a Yosys cell, over operands of mixed widths and signedness, is
emitted and then proven equivalent to Amaranth's own RTLIL by Yosys (``equiv_make``,
``equiv_simple``, ``equiv_status -assert``). The simulations of the whole suite run the emitted
Verilog too; this pins down the corner cases (one-bit and zero-width operands, constants out of
range, shifts wider and narrower than their result) directly.
"""

import subprocess

import pytest
from amaranth import Cat, Const, Module, Mux, signed, unsigned
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.gen.flows.emit import convert, widening_techmap
from attn_rtl.gen.flows.synth import _yosys, _yowasp_env


class Operators(wiring.Component):
    """Every arithmetic, bitwise, compare, reduce and shift operator over mixed widths."""

    def __init__(self, wa, wb, wc, ws):
        self._wa, self._wb, self._wc, self._ws = wa, wb, wc, ws
        outputs = {f"y{i}": Out(width) for i, width in enumerate(self._widths())}
        super().__init__({"a": In(signed(wa)), "b": In(unsigned(wb)), "c": In(signed(wc)), "s": In(unsigned(ws)),
                          **outputs})

    def _widths(self):
        return [len(e) for e in self._expressions(Const(0, signed(self._wa)), Const(0, self._wb),
                                                  Const(0, signed(self._wc)), Const(0, self._ws))]

    @staticmethod
    def _expressions(a, b, c, s):
        return [a + b, a - c, b - a, a * b, c * a, b * b, a & c, b | c, a ^ b, ~(a ^ c), ~b, -a, -b,
                a < b, c >= a, b == c, a != 0, b <= (1 << len(b)) - 1, c > -1, a <= b,
                a << s, b << s, c >> s, b >> s, a.shift_left(2), c.shift_right(1), b.rotate_left(1),
                c.bool(), c.any(), c.all(), c.xor(), ~c.bool(), (a == 0) | (b == 0),
                Mux(s[0], a, b), Mux(b.any(), c, 3), Cat(a, b)[1:], (c + a)[:1], c.as_unsigned() * b,
                (a * c) >> s, a.as_unsigned() + c.as_unsigned(), b.as_signed() - 1, a + b[:0], b[:0] < a]

    def elaborate(self, platform):
        m = Module()
        values = self._expressions(self.a, self.b, self.c, self.s)
        m.d.comb += [getattr(self, f"y{i}").eq(v) for i, v in enumerate(values)]
        return m


def _equivalent(component, tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "gold.il").write_text(rtlil.convert(component, name="probe", emit_src=False))
    (tmp_path / "gate.v").write_text(convert(component, name="probe"))
    script = ["read_rtlil gold.il", "proc", "flatten", "rename probe gold", "design -stash gold",
              "read_verilog gate.v", "proc", "flatten", "rename probe gate", "design -stash gate",
              "design -copy-from gold -as gold gold", "design -copy-from gate -as gate gate",
              "equiv_make gold gate equiv", "hierarchy -top equiv", "equiv_simple", "equiv_status -assert"]
    return subprocess.run([_yosys(), "-p", "; ".join(script)], cwd=tmp_path, env=_yowasp_env(),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("wa, wb, wc, ws", [(5, 3, 9, 3), (1, 1, 1, 1), (8, 16, 3, 5), (17, 2, 33, 6)])
def test_emitted_verilog_is_equivalent_to_amaranths_netlist(wa, wb, wc, ws, tmp_path):
    run = _equivalent(Operators(wa, wb, wc, ws), tmp_path)
    tail = "\n".join((run.stdout + run.stderr).splitlines()[-20:])
    assert run.returncode == 0 and "Equivalence successfully proven" in run.stdout, tail


def test_equivalence_check_can_fail(tmp_path, monkeypatch):
    """A map that sign-extends where the cell zero-extends is caught."""
    import attn_rtl.gen.flows.emit as emit

    broken = widening_techmap().replace("else if (A_SIGNED && B_SIGNED)", "else if (1)")
    assert broken != widening_techmap()
    monkeypatch.setattr(emit, "widening_techmap", lambda: broken)
    run = _equivalent(Operators(5, 3, 9, 3), tmp_path)
    assert run.returncode != 0 and "unproven $equiv cells" in run.stderr, run.stderr[-2000:]
