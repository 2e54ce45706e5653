"""Formal proofs and their mutations, run and written into docs/verification.md.

Run with ``./dev.sh bench formal``: every entry of :data:`attn_rtl.tb.formal.CHECKS`
(slow ones included) and :data:`attn_rtl.tb.formal.MUTATIONS`, with its verdict
and solver time.  The same entries are the tests of ``tests/test_formal.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

from .pages import DOCS, write_page

__all__ = ["run", "PARTS"]

PARTS = ("proofs", "mutations")
_MODES = {"prove": "k-induction (unbounded)", "bmc": "bounded", "cover": "cover"}


def _proofs() -> list[str]:
    from attn_rtl.tb.formal import CHECKS, run_check

    lines = ["| block | parameters | properties | check | depth | result | time |", "|---|---|---|---|---|---|---|"]
    for check in CHECKS:
        result = run_check(check)
        lines.append(f"| `{check.block}` | {check.parameters} | {check.properties} | {_MODES[check.mode]} | "
                     f"{check.depth} | **{result.status}** | {result.seconds:.1f} s |")
    return lines


def _mutations() -> list[str]:
    from attn_rtl.tb.formal import MUTATIONS, run_mutation

    lines = ["| block | net broken (Yosys `mutate`) | what it breaks | bounded check | caught by |",
             "|---|---|---|---|---|"]
    for mutation in MUTATIONS:
        _, result = run_mutation(mutation)
        where = re.search(r"failed assertion .*?tb/formal\.py:(\d+)", result.log)
        lines.append(f"| `{mutation.block}` | `{mutation.wire}` {mutation.mode} | {mutation.what} | "
                     f"{mutation.depth} cycles: **{result.status}** ({result.seconds:.1f} s) | "
                     f"{_property(int(where.group(1))) if where else '–'} |")
    return lines


def _property(line: int) -> str:
    """The property at ``line`` of tb/formal.py, as its source reads."""
    from attn_rtl.tb import formal

    text = Path(formal.__file__).read_text().splitlines()[line - 1].strip().removeprefix("m.d.comb += ")
    return f"`{text}` (`tb/formal.py:{line}`)"


def run(parts=PARTS, *, out: Path | None = None) -> Path:
    page = out or DOCS / "verification.md"
    sections = {}
    if "proofs" in parts:
        sections["proofs"] = _proofs()
    if "mutations" in parts:
        sections["mutations"] = _mutations()
    return write_page(page, _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Verification

What is proven, what is simulated, and how to run each.  Written by `./dev.sh bench formal`
(`gen/bench/formal.py`) on {date} ({machine}); {versions}.

## Formal proofs

Specs in the design's own language (Amaranth `Assert`, `Assume`, `Cover`; `tb/formal.py`), checked by
SymbiYosys from PyPI: `yowasp-sby` with the `smtbmc` engine and the `z3` of the `z3-solver` wheel
(`attn_rtl.sim.formal.check`).  A spec holds the block, a free reset (asserted in the first cycle, free
afterwards: a reset may come in any cycle), and:

- on every stream the block drives, **asserted**: once `valid` is high it stays high, and the payload
  stable, until the handshake; `valid` is low the cycle after a reset;
- on every stream it takes, the same rules **assumed** of the environment (free `valid`, payload and
  `ready` otherwise);
- a **beat tracker**: beats in and out are counted, at most the block's capacity inside, `valid` low when
  none is; one beat, its index a free constant, must leave as the same beat with the same payload (no
  beat lost, duplicated, reordered or changed);
- for k-induction, invariants of the block's state against the tracker (the register slice's flags and
  pointers against the beats inside, the tracked beat against the entry holding it).

`prove` is k-induction: the properties hold in every cycle of every run.  `bmc` checks every cycle up to
the depth stated (from reset).  `cover` shows the states named reachable within the depth.
Re-run: `./dev.sh bench formal --parts proofs`; as tests: `./dev.sh test -m formal` (the slow ones with
`-m "formal and slow"`; the default suite runs the rest).

<!-- begin proofs -->
{proofs}
<!-- end proofs -->

### Every property can fail

Each mutation breaks one net of the block (a Yosys `mutate` command, listed by `mutate -list` and chosen by
the wire it breaks and how, `attn_rtl.sim.formal.mutations`) and runs the bounded check of the interface
properties alone (no state invariants): it must fail, naming a property of `tb/formal.py`.
Re-run: `./dev.sh bench formal --parts mutations`.

<!-- begin mutations -->
{mutations}
<!-- end mutations -->

### Not yet proven

The AXI4-Lite slave is proven as `serve_registers`, the function every top's register file is (over a
small map; the tops themselves, with their engines, are not checked formally).  Not yet: the systolic
array, softmax unit, output accumulator, sparse scheduler, top-k engine and its merge level, the
importance units, the engine top and the memory-mapped top; liveness (a run finishing within the cost
model's cycles); k-induction of the credit FIFO (it needs invariants of its counters; the bounded check
stands meanwhile); the FIFO in ECP5 block RAM (the DP16KD model is not read by the formal flow yet).

## Simulation

Every unit is checked bit-exact against its numpy golden model under cocotb on Icarus and Verilator, with
random idle cycles and backpressure on every stream, resets in the middle of runs and extreme and odd
shapes (`tests/`, seeds printed with every failure); the memory-mapped top additionally against
cocotbext-axi's `AxiRam` with every other byte of memory checked (docs/system.md, *Verification*).
Runs with X-initialization (`--x-initial unique`), soak runs and fuzzing of the register file and the CLI
are not there yet.
"""
