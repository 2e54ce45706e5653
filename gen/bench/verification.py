"""docs/verification.md: formal proofs and their mutations, and the soak, run and written into the page.

Run with ``./dev.sh bench verification``: every entry of :data:`attn_rtl.tb.formal.CHECKS`
(slow ones included) and :data:`attn_rtl.tb.formal.MUTATIONS`, with its verdict and
solver time (the same entries are the tests of ``tests/test_formal.py``), and the long
soak (:mod:`attn_rtl.gen.soak`; ``tests/test_soak.py`` runs a short one).
"""

from __future__ import annotations

import re
from pathlib import Path

from .pages import DOCS, write_page

__all__ = ["run", "PARTS"]

PARTS = ("proofs", "mutations", "soak")

#: The long soak: (kind, build, runs).  Small builds, so thousands of runs take minutes.
SOAK = (
    ("engine", dict(rows=2, cols=3, max_seq_len=24, max_head_dim=7, max_heads=4), 1500),
    ("engine", dict(rows=3, cols=2, max_seq_len=24, max_head_dim=6, max_heads=4, sparse=True, max_globals=2,
                    max_dilation=4), 1500),
    ("engine", dict(rows=3, cols=4, max_seq_len=24, max_head_dim=9, max_heads=2, sparse=True, sliding=True,
                    max_globals=2, max_dilation=4), 1000),
    ("engine", dict(rows=3, cols=4, max_seq_len=24, max_head_dim=9, max_heads=2, sparse=True, sliding=True,
                    global_row=True, max_globals=2, max_dilation=4), 1000),
    ("memory_mapped", dict(rows=2, cols=3, max_seq_len=24, max_head_dim=7, max_heads=3, importance=True,
                           row_flags=True), 200),
)
SOAK_SEED = 2026
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


def _soak(sim: str) -> list[str]:
    from attn_rtl.gen.soak import soak_engine, soak_memory_mapped

    lines = ["| build | harness | runs | mismatches | hangs | cycles simulated | wall time | covered |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, params, runs in SOAK:
        if kind == "engine":
            result = soak_engine(params, runs, seed=SOAK_SEED, sim=sim)
            harness = "full-rate engine harness, random stalls 0 / 0.1 / 0.3 / 0.6 per batch of 25"
        else:
            result = soak_memory_mapped(params, runs, seed=SOAK_SEED, sim=sim)
            harness = "memory-mapped top + AXI memory, latency 1-200, 1 byte to bus width a cycle, per batch of 10"
        covered = ", ".join(f"{name} {count}" for name, count in sorted(result.covered.items()))
        # A mismatch or a hang raises (the bench stops naming the run): reaching this line means none.
        lines.append(f"| {result.build} | {harness} | {result.runs} | 0 | 0 | {result.cycles:,} | "
                     f"{result.seconds:.0f} s | {covered} |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", out: Path | None = None) -> Path:
    page = out or DOCS / "verification.md"
    sections = {}
    if "proofs" in parts:
        sections["proofs"] = _proofs()
    if "mutations" in parts:
        sections["mutations"] = _mutations()
    if "soak" in parts:
        sections["soak"] = _soak(sim)
    return write_page(page, _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Verification

What is proven, what is simulated, and how to run each.  Written by `./dev.sh bench verification`
(`gen/bench/verification.py`) on {date} ({machine}); {versions}.

## Formal proofs

Specs in the design's own language (Amaranth `Assert`, `Assume`, `Cover`; `tb/formal.py`), checked by
SymbiYosys from PyPI: `yowasp-sby` with the `smtbmc` engine and the `z3` of the `z3-solver` wheel
(`attn_rtl.sim.formal.check`).  A spec holds the block, a free reset (asserted in the first cycle, free
afterwards: a reset may come in any cycle), and:

- on every stream the block drives, **asserted**: once `valid` is high it stays high, and the payload
  stable, until the handshake; `valid` is low the cycle after a reset;
- on every stream it takes, the same rules **assumed** of the environment (free `valid`, payload and
  `ready` otherwise); the block's other inputs free: 1-bit ones (starts, flags) in every cycle, wider
  ones (sizes, registers) any constant of the trace, as the engine holds them through a run;
- a **cover** per output stream: a beat leaves, and one leaves after waiting (so no check passes only
  because nothing ever leaves within its depth);
- for the register slice and the credit FIFO, a **beat tracker**: beats in and out are counted, at most
  the block's capacity inside, `valid` low when none is; one beat, its index a free constant, must leave
  as the same beat with the same payload (no beat lost, duplicated, reordered or changed);
- for the top-k engine, its **answer** to one problem (any values, keep bits, `k` and stalls): pairs leave
  largest first, ties to the lower index, the kept lanes of a beat first and only the last beat partial,
  exactly min(k, kept values) pairs, then `last` and nothing more (the merge level's ordering and
  trimming are inside: its mutations below are caught by these properties);
- for a **merge level** of the top-k engine on its own (its credit interface on both sides): a writer
  that fires a send latency after a cycle of `may_send`, sending descending runs (nonzero keys distinct
  across a pair, as the engine's are) back to back, and any `o_may_send`: a beat leaves only on a credit,
  each merged run descends and has min(⌈k/lanes⌉, a + b) beats, and for one pair and one key value chosen
  by the solver the run holds the key as often as the pair's runs do (above the cut when cut at k): no key
  lost, duplicated or overwritten in a full bank;
- for the AXI4-Lite slave (`serve_registers`, every top's register file): the master's channel rules
  assumed, the slave's asserted; one response per request, in order; OKAY on the map, SLVERR off it or
  to a read-only register; a read returns the register's value;
- for **the engine and its tops**: the smallest engine of every build (1x1 array, L up to 2, d = 1, one
  head; dense, sparse, importance runs, row flags; sizes free constants, so every runtime shape, and
  `start` in any cycle): the stream rules on every port, and nothing accepted or sent in reset (its
  ports are gated by the reset as it arrives, a cycle before its units see their copies).  The AXI4-Stream
  top, the AXI4-Lite top and the memory-mapped top through their AXI ports: on every channel the
  valid/payload rules, `valid` low in every reset cycle (AXI A3.1.2), nothing accepted in reset (an
  AXI4-Stream input's `tready` low; an AXI4(-Lite) peer's `valid` assumed low, as AXI requires of it),
  one AXI4-Lite answer per request, in order.  The engine's covers show a run starting and taking Q and K
  beats (sparse: a `kv_index` beat leaving after waiting), the memory-mapped top's an AXI4 read burst
  taken after its registers are written and a start (step 17), so their environments are not vacuous;
- **bounded liveness** of the systolic array: fed one-step tiles back to back with its output always
  ready, the last result row leaves within its cycle model's count (`run_cycles`, the figure the cost
  model sums) of the first step accepted; the cover shows the bound is tight;
- for k-induction, invariants of the block's state against the tracker (the register slice's flags and
  pointers against the beats inside, the tracked beat against the entry holding it).

`prove` is k-induction: the properties hold in every cycle of every run.  On the engine it converges at
depth 4 in seconds: the hold of each output depends on a few registers beside it, whatever the rest of the
engine's state.

**Found by these proofs** (fixed; the first kept as a mutation below):

- `m_axis_kv_index` (sparse builds) withdrew a waiting beat: its `valid` was gated by a registered
  "room in the score-tile FIFO" flag that could fall while the beat waited for the DMA (a tile written
  the cycle before it was offered).  An AXI4-Stream violation no simulation had caught (the testbenches'
  monitors take beats at handshakes); a beat offered now keeps its room until taken.
- The token-importance unit's drain was cleared by a `start`, dropping a waiting beat (the engine never
  starts then; the unit no longer depends on it), and its `out` valid now also needs the drain state, so
  the hold is inductive.
- The AXI4-Lite slave's `bvalid`/`rvalid` and the AXI4 master's `awvalid`/`wvalid`/`arvalid` came from
  registers and stayed high in the first cycle of a reset (a synchronous reset takes effect at its first
  edge); AXI wants them low throughout reset.  They are now gated by the reset (a gate each).

`bmc` checks every cycle up to the depth stated (from reset); each block's depth reaches past the cycle its
first output beat can leave (its cover shows the beat within that depth; the engine's and the
memory-mapped top's do not reach an O beat).  `cover` shows the states named reachable within the depth.
Re-run: `./dev.sh bench verification --parts proofs`; as tests: `./dev.sh test -m formal` (the slow ones
with `-m "formal and slow"`; the default suite runs the rest).

<!-- begin proofs -->
{proofs}
<!-- end proofs -->

### Every property can fail

Each mutation breaks one net of the block (a Yosys `mutate` command, listed by `mutate -list` and chosen by
the wire it breaks and how, `attn_rtl.sim.formal.mutations`) and runs the bounded check of the interface
properties alone (no state invariants): it must fail, naming a property of `tb/formal.py`.
Re-run: `./dev.sh bench verification --parts mutations`.

<!-- begin mutations -->
{mutations}
<!-- end mutations -->

### Not yet proven

Proven by k-induction: the register slice, the AXI4-Lite slave, the engine top of every build and the
AXI4-Stream and AXI4-Lite tops (stream and channel rules).  Bounded only (depths above): the memory-mapped
top (24 cycles: its registers written, a start and the DMA's first read bursts, not yet a write of O; its
k-induction fails on a peer that answers B or R with nothing outstanding, which AXI forbids but the spec
does not yet assume: the assumption needs the DMA's counters tied to the spec's), the credit FIFO
(k-induction needs invariants of its counters), the systolic array, sparse scheduler, importance units,
output accumulator and softmax unit (stream rules on small builds), and the top-k engine's answer (one
problem per reset), the merge level (13 cycles: two-beat pairs, the banks filled to the credit limit).
Not checked formally: data correctness of the arithmetic blocks (that is the golden models' job, below),
properties of the engine's output data or beat counts (a cover of its
first O beat, at depth 90, did not finish in 400 s), liveness of whole runs in the cost model's cycle
count (measured in simulation instead: `tests/test_cost_model.py`, within 3% of RTL; proven only for the
array's own model), and the FIFO in ECP5 block RAM (the DP16KD model is not read by the formal flow).

## Simulation

Every unit is checked bit-exact against its numpy golden model under cocotb on Icarus and Verilator, with
random idle cycles and backpressure on every stream, resets in the middle of runs and extreme and odd
shapes (`tests/`, seeds printed with every failure); the memory-mapped top additionally against
cocotbext-axi's `AxiRam` with every other byte of memory checked (docs/system.md, *Verification*).

### No dependence on power-up values

`attn_rtl.sim.runner.unknown_power_up(seed)` runs any cocotb test on the generated Verilog without its
power-up values (every `reg x = …;` initializer and memory `initial` block removed): Icarus starts every
register and memory word at X, so an X reaching a compared output or a handshake fails the run; Verilator is
built with `--x-initial unique --x-assign unique` and run with `+verilator+rand+reset+2
+verilator+seed+<seed>`, a random value per register.  `tests/test_power_up.py` runs the systolic array,
softmax unit, output accumulator, sparse scheduler, top-k engine, the engine (generic, with ECP5 primitives,
sparse, decoder, importance builds) and the memory-mapped top this way, each reset, run, reset in the middle
of a run and run again, bit-exact: on Icarus (X) and on Verilator with seeds 1, 2 and 3 (44 runs; the
Icarus runs of the smaller units in the default suite, the rest with
`-m slow`).  A control register without a reset reads X on Icarus and a different value per Verilator seed
(the same test), so the mechanism is shown to bite.

Every register that lacks a reset (the datapath: `reset_less`, to keep the reset's fan-out small, see
docs/timing.md) is written before it is read in every run, which these runs confirm.  They found one
dependence, in the simulation models rather than the design: the ECP5 DP16KD and MULT18X18D models left
their unconnected `RST` pins floating, which Verilator drew as random 1s (zeroing the RAM and multiplier
outputs); the pins are now `tri0`, inactive as in the silicon.

### Soak

Back-to-back random runs on small builds in the free-running harnesses (`attn_rtl.gen.soak`): every size
drawn from 1, its maximum or anything between; grouped heads and fewer queries where the pattern allows;
every sparse pattern with random windows, dilations, grids and global tokens; half the runs at a random
score scale; on the SpAtten build importance runs, K from its 1-, 2- or 4-bit MSB plane, random token,
query and head lists and every memory layout.  Every output element is compared with the golden model; a
run that does not finish within its harness's cycle budget (several times its expected length) is a hang
and stops the soak with its seed and run.  Re-run: `./dev.sh bench verification --parts soak` (seed
2026); the default suite runs a short soak (`tests/test_soak.py`, a few dozen runs per build).

<!-- begin soak -->
{soak}
<!-- end soak -->

### Fuzzing

- **Register file** (`tests/test_collateral.py`, `tb/test_engine_axil.py` with `fuzz`): 300 random AXI4-Lite
  transactions (mapped, unaligned and unmapped addresses, random data and `wstrb`) against a shadow of the
  register file, every response code and read value checked; then a start with each runtime value just
  outside its documented range (`SEQ_LEN` 0 and `max_seq_len + 1`, `HEADS`, `HEAD_DIM`, `QUERY_LEN >
  SEQ_LEN`, `KV_HEADS` above or not dividing `HEADS`, pattern codes 6 and 7, window, dilation, grid and 2-D
  window out of range, too many or misplaced global tokens, grouped heads with importance or row flags):
  `CTRL` must read ERROR with neither BUSY nor DONE and no O beat may leave; then runs with random register
  writes and STARTs while busy (ignored: the run keeps the values it took at start), bit-exact.  Values
  wider than a register are not tried (bits above a register's width are ignored on write, as the map
  says).  This found that pattern codes 6 and 7 started a run of no pattern; the scheduler now refuses them.
- **Memory-mapped top's register file** (`tests/test_engine_mm.py`, `tb/test_engine_mm.py` with `fuzz`): 300
  random transactions over its whole map (the DMA's bases and strides, the lists, `K_MSB_BITS`; off the map
  and unaligned; random data, strobes as writes of their contiguous bytes through cocotbext-axi) against a
  shadow, every answer checked; the registers restored, then SpAtten runs (a pruned importance run, a plain
  one), each with two STARTs while busy (ignored), bit-exact with every burst and byte counter checked.
  Register writes while the DMA runs are not tried (what a run takes at start is documented for the
  runtime registers only).
- **Command line** (`tests/test_cli_fuzz.py`, hypothesis): `golden` on random `.npz` inputs (missing
  arrays, NaN and Inf, empty and oddly shaped arrays, integer, bool, complex, string and date dtypes, raw
  bytes), `generate` on random TOML (random text, unknown keys, values of every TOML type, absurd sizes),
  absurd flag values for every engine size and for `sim`, `golden` and `explore`: each must end in one
  line `attn-rtl: error: ...` and status 2 (valid draws must succeed), with no traceback and no hang.  This
  made negative seeds a clear error (they reached numpy inside the testbench) and `golden` refuse inputs of
  more than 2^26 scores (they would exhaust memory).
"""
