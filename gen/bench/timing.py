"""Timing bench: nextpnr-ecp5 Fmax of whole designs and of the engine's blocks, with the reset timed.

Every design sits in :class:`~attn_rtl.hdl.pin_wrapper.PinWrapper`, whose reset comes from a register,
and is placed and routed on the LFE5U-85F-6 CABGA381 once per seed, one run at a time.  Each run's
nextpnr log and JSON report stay in the cache (``pnr/``); its figures (Fmax per seed and median, the
clock-to-clock critical path of each seed split into logic and routing with the cells on it, the
utilization, wall time) are kept in ``bench/timing.json`` of the cache, so parts can be measured one at
a time.  Writes docs/timing.md and docs/timing.json.

Parts: ``units`` (each block of the default engine at the engine's own parameters: minutes each),
``proxy`` (a 4×4 engine: a whole-engine figure in minutes), ``softmax``, ``array``, and the engines
``engine``, ``engine_sparse``, ``engine_spatten`` (1-2 hours per seed); one block of an engine design
alone as ``<design>.<block>`` (``engine.softmax``, ``engine_sparse.scheduler``).
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
from pathlib import Path

from attn_rtl.gen.presets import PRESETS

from . import engine as engine_bench
from . import softmax as softmax_bench
from .pages import DOCS, write_page

__all__ = ["run", "widest", "deep", "PARTS", "DESIGNS", "measure"]

PARTS = ("units", "proxy", "softmax", "array", "engine", "engine_sparse", "engine_spatten")
#: The default engine as the engine bench builds it for Fmax (ECP5 multipliers with their registers,
#: DP16KD FIFOs, the large buffers where Yosys puts them), the softmax unit and the array likewise.
ENGINE = dict(engine_bench.DEFAULT, **engine_bench.FMAX_CONFIG)
PROXY = dict(ENGINE, rows=4, cols=4, max_seq_len=256, max_head_dim=64, max_heads=4)
#: Design name -> (kind of component, parameters): "engine" designs are the bare AttentionEngine.
DESIGNS = {
    "engine": ("engine", ENGINE),
    "engine_sparse": ("engine", dict(ENGINE, max_seq_len=4096, sparse=True)),
    "engine_spatten": ("engine", dict(ENGINE, importance=True, row_flags=True)),
    "engine_proxy": ("engine", PROXY),
    "softmax": ("softmax", dict(softmax_bench.DEFAULT, multiplier="ecp5", fifo_memory="ecp5")),
    "array": ("array", dict(PRESETS["array"]["default"], multiplier="ecp5", fifo_memory="ecp5")),
    # The memory-mapped top's DMA alone at the default engine's sizes (its 64-bit master, the smallest ring).
    "engine_mm.dma": ("dma", dict(rows=ENGINE["rows"], cols=ENGINE["cols"], max_seq_len=ENGINE["max_seq_len"],
                                  max_heads=ENGINE["max_heads"], max_head_dim=ENGINE["max_head_dim"],
                                  prob_tiles=ENGINE.get("prob_tiles", 3))),
}
#: Engine designs whose blocks can be timed alone.
ENGINE_DESIGNS = ("engine", "engine_sparse", "engine_spatten")
ROUTER = ("--router", "router2")
TIMEOUT = 150 * 60


def _component(kind: str, params: dict):
    from attn_rtl.hdl import AttentionEngine, EngineDMA, SoftmaxUnit, SystolicArray

    return {"engine": AttentionEngine, "softmax": SoftmaxUnit, "array": SystolicArray,
            "dma": EngineDMA}[kind](**params)


def _cache() -> Path:
    from attn_rtl.sim.runner import default_cache_dir

    return default_cache_dir() / "bench" / "timing.json"


def measure(name: str, component, seeds) -> dict:
    """Place and route ``component`` once per seed; the entry docs/timing.json keeps for it."""
    from attn_rtl.gen.flows.pnr import fmax_ecp5
    from attn_rtl.gen.generate import _hdl_fingerprint
    from attn_rtl.gen.provenance import VERSION, checkout_commit

    start = time.monotonic()
    found = fmax_ecp5(component, seeds=tuple(seeds), timeout=TIMEOUT, nextpnr_args=ROUTER)
    used = found["utilization"]
    return {"design": name, "fmax_mhz": found["per_seed"], "median_mhz": round(statistics.median(found["per_seed"]), 2),
            "seeds": list(seeds), "luts": used["lut4"], "ffs": used["ff"], "dsps": used["mult18x18d"],
            "brams": used["dp16kd"], "carry": found.get("carry"), "lut_mapper": found["lut_mapper"], "wall_s": round(time.monotonic() - start),
            "critical_paths": found["paths"], "widest_nets": found["widest_nets"], "deep_paths": found["deep_paths"], "logs": found["logs"], "date": datetime.date.today().isoformat(),
            "commit": checkout_commit() or f"attn-rtl {VERSION}", "hdl": _hdl_fingerprint()[:16]}


def _engine_blocks(design: str = "engine") -> dict:
    """``{"<design>.<block>": component}``: the blocks of one engine design at its own parameters."""
    engine = _component(*DESIGNS[design])
    engine._MustUse__silence = True
    blocks = {f"{design}.{name}": block for name, block in engine.blocks().items()}
    for block in blocks.values():
        block._MustUse__silence = True   # only the ones asked for are built
    return blocks


def part_names() -> tuple:
    """What ``--parts`` may name: the parts, and each block of an engine design alone (``engine.softmax``,
    ``engine_sparse.scheduler``, ``engine_spatten.row_flags``)."""
    return PARTS + ("engine_mm.dma",) + tuple(name for design in ENGINE_DESIGNS for name in _engine_blocks(design))


def _designs(parts) -> list[tuple[str, object]]:
    """(name, component) of every design the parts name, in the order of ``parts``."""
    out = []
    for part in parts:
        design, _, block = part.partition(".")
        if part == "units":
            out += _engine_blocks().items()
        elif block and design in ENGINE_DESIGNS:
            blocks = _engine_blocks(design)
            if part not in blocks:
                raise ValueError(f"part must be one of {', '.join(part_names())}, not {part!r}")
            out.append((part, blocks[part]))
        elif part == "proxy":
            out.append(("engine_proxy", _component(*DESIGNS["engine_proxy"])))
        else:
            out.append((part, _component(*DESIGNS[part])))
    return out


def run(parts=PARTS, *, seeds=(1, 2), out: Path | None = None, json_out: Path | None = None) -> Path:
    cache = _cache()
    # A fresh cache starts from the figures docs/timing.json records (all but the nextpnr logs), so that
    # timing one part on a new machine does not drop the others from the page.
    recorded = json_out or DOCS / "timing.json"
    source = cache if cache.exists() else recorded
    stored = json.loads(source.read_text()) if source.exists() else {}
    for name, component in _designs(parts):
        print(f"bench timing: {name} (seeds {', '.join(map(str, seeds))})", flush=True)
        stored[name] = measure(name, component, seeds)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored, indent=1, sort_keys=True))
    figures = {name: {k: v for k, v in entry.items() if k not in ("logs", "hdl")} for name, entry in stored.items()}
    recorded.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return write_page(out or DOCS / "timing.md", _TEMPLATE, ("table", "paths"),
                      {"table": _table(stored), "paths": _paths(stored)})


def _table(stored: dict) -> list[str]:
    lines = ["| design | Fmax per seed (MHz) | median | LUT4 | FF | MULT18X18D | DP16KD | CCU2C | wall | commit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in sorted(stored.items(), key=lambda kv: kv[1]["median_mhz"]):
        mapped = " (LUTs by abc: ABC9 trapped)" if e.get("lut_mapper", "abc9") != "abc9" else ""
        lines.append(f"| {name}{mapped} | {', '.join(f'{f:.1f}' for f in e['fmax_mhz'])} | **{e['median_mhz']:.1f}** | "
                     f"{e['luts']:,} | {e['ffs']:,} | {e['dsps']} | {e['brams']} | {_count(e.get('carry'))} | "
                     f"{_wall(e['wall_s'])} | {e['commit'][:10]} ({e['date']}) |")
    return lines


def _wall(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _count(value) -> str:
    return "–" if value is None else f"{value:,}"   # – : not recorded (runs before the carry count was kept)


def _paths(stored: dict) -> list[str]:
    lines = []
    for name, e in sorted(stored.items(), key=lambda kv: kv[1]["median_mhz"]):
        lines.append(f"**{name}**")
        lines.append("")
        for seed, path in zip(e["seeds"], e["critical_paths"]):
            if path is None:
                continue
            cells = path["cells"]
            shown = " → ".join(f"`{c}`" for c in (cells if len(cells) <= 6 else [*cells[:3], "…", *cells[-2:]]))
            lines.append(f"- seed {seed}: {path['total_ns']:.2f} ns = {path['logic_ns']:.2f} logic + "
                         f"{path['routing_ns']:.2f} routing; {shown}")
        if e.get("widest_nets"):
            lines.append("- widest nets after synthesis: " + "; ".join(_net(net) for net in e["widest_nets"][:5]))
        if e.get("deep_paths"):
            found = e["deep_paths"]
            line = (f"- estimated after synthesis (`--deep-paths`): {found['over_budget']:,} of "
                    f"{found['endpoints']:,} endpoints over {found['budget_ns']} ns")
            if found["paths"]:
                worst = found["paths"][0]
                line += f"; worst {worst['ns']} ns, {worst['levels']} levels, `{worst['nets'][0]}` → `{worst['end']}`"
            lines.append(line)
        lines.append("")
    return lines


def _net(net: dict) -> str:
    reaches = ", ".join(f"`{name}` {count}" for name, count in net["reaches"])
    return f"`{net['driver']}` → {net['fanout']} ({reaches})"


def widest(parts, *, count: int = 15) -> str:
    """The widest nets of each design the parts name, after ECP5 synthesis alone (no place and route): a
    table in Markdown, for finding fan-out before an hour-long run."""
    from attn_rtl.gen.flows.pnr import synthesized_widest_nets

    lines = []
    for name, component in _designs(parts):
        lines += [f"**{name}**", "", "| fan-out | driver | reaches |", "|---|---|---|"]
        for net in synthesized_widest_nets(component, count=count):
            reaches = ", ".join(f"`{where}` {n}" for where, n in net["reaches"])
            lines.append(f"| {net['fanout']:,} | `{net['driver']}` | {reaches} |")
        lines.append("")
    return "\n".join(lines)


def deep(parts, *, count: int = 25, mhz: float = 150.0) -> str:
    """The estimated deepest register-to-register paths of each design the parts name, after ECP5
    synthesis alone (:func:`~attn_rtl.gen.flows.netlist_paths.deep_paths`): Markdown, in about a minute
    for the 8×8 engine, where place and route names one path in 12-15 minutes."""
    from attn_rtl.gen.flows.netlist_paths import deep_paths
    from attn_rtl.gen.flows.pnr import synthesized_netlist

    lines = []
    for name, component in _designs(parts):
        found = deep_paths(synthesized_netlist(component), budget_ns=1000 / mhz, count=count)
        units = ", ".join(f"`{unit}` {n:,}" for unit, n in found["by_unit"])
        lines += [f"**{name}**: {found['over_budget']:,} of {found['endpoints']:,} endpoints estimated over "
                  f"{found['budget_ns']} ns ({mhz:g} MHz){': ' + units if units else ''}", "",
                  "| ns | levels | from | to |", "|---|---|---|---|"]
        for path in found["paths"]:
            lines.append(f"| {path['ns']:.2f} | {path['levels']} | `{path['nets'][0]}` | `{path['end']}` |")
        lines.append("")
    return "\n".join(lines)


_TEMPLATE = """# Timing: Fmax on ECP5 with the reset timed

Written by `./dev.sh bench timing` (`gen/bench/timing.py`) on {date} ({machine}); {versions}.

Method: each design inside `hdl/pin_wrapper.py` (every input from a flip-flop chain, every output into a
registered XOR tree, and the reset from a register: two flip-flops after the `rst` pin, as a reset
synchronizer gives it, so the reset's fan-out to every flip-flop is a timed clock-to-clock path), Yosys
`synth_ecp5`, then `nextpnr-ecp5 --85k --package CABGA381 --speed 6 --freq 200 --timing-allow-fail
--router router2 --seed N --report`, one run at a time, the clock pin on G2 (a primary clock input,
`PCLKT6_0`; the other pins unconstrained). Since 2026-12-05 the clock pin is placed: left to the placer, a
seed put it on a pin with no route to the global clock network and the run failed (`Failed to route arc
0.0 of net 'clk$TRELLIS_IO_IN'`); rows measured before place it where nextpnr chose. The engines are built as the engine bench builds
them for Fmax: ECP5 multipliers with their registers (`multiplier = "ecp5"`) and DP16KD FIFOs
(`fifo_memory = "ecp5"`), the other buffers where Yosys puts them; the softmax unit and the array alike.
`engine.<block>` rows are the blocks of the default 8×8 engine (`AttentionEngine.blocks()`: L ≤ 1024,
d ≤ 128, 16 heads), each alone in the same wrapper at the engine's own parameters: the slowest block is
found in minutes, without a whole-engine run (the accumulator's register slice is part of
`engine.output_accumulator` since 9bbee90; the `engine.accumulator_slice` row is gone with it). `engine_proxy` is a 4×4 engine (max_head_dim 64,
max_seq_len 256, max_heads 4). Utilization is nextpnr's (LUT4 = TRELLIS_COMB, FF = TRELLIS_FF); CCU2C is
Yosys's count of carry cells (– where a run did not record it). Each run's log and JSON report are kept
under the cache (`pnr/`). Where ABC9 traps inside the WebAssembly Yosys (it does on the output
accumulator with its MULT18X18D pieces), the LUTs are mapped by `abc` instead and the row says so.

Commands: `./dev.sh bench timing --parts units,proxy --seeds 1,2` (minutes per design; one block of an
engine alone: `--parts engine.softmax`, `engine_sparse.scheduler`, `engine_spatten.row_flags`); `./dev.sh bench
timing --parts engine --seeds 1,2` (12-15 minutes per seed for the 8×8 engine; the sparse engine's seeds took
14 and over 45 minutes at e4422fc). Before any of that, `./dev.sh bench timing --parts engine --widest-nets`
lists the nets with the most cell inputs after synthesis alone (about a minute): on ECP5 a net reaching a few
hundred cells spans the die, and its routing (8-20 ns here) sets Fmax long before logic depth does; every
timed entry keeps its widest nets too (section *Critical paths*). `--deep-paths` (same minute of
synthesis, then a second) estimates every register-to-register path of the netlist (`gen/flows/netlist_paths.py`:
the cell delays nextpnr-ecp5 reports, LUT4 0.24 ns, PFUMX 0.26 ns, carry 0.35 ns plus 0.06 ns a cell
along the chain, block RAM and multiplier clock-to-output; each net's routing 0.55 + 0.25·log2(fan-out) ns)
and lists the endpoints past 6.67 ns (150 MHz) by unit with the deepest path from each start signal:
on the 4×4 proxy at 0dbfcfc it puts the critical path nextpnr found (10.2 ns, seed 1) at 10.4 ns, and it
finds the deep logic cones of a design at once, where place and route names one per run. It does not
see placement: a net between two block RAMs far apart on the die is long whatever its fan-out, so a
fix is confirmed by place and route. Every timed entry keeps its estimate (section *Critical paths*).
nextpnr's own options moved the proxy by no more than its seeds do (seed 1 at 0dbfcfc: 98.3 MHz as
the bench runs it, router2; 103.8 with router1; 101.3 with `--placer-heap-timingweight 30`; 98.3 with
`--placer-heap-critexp 4`; 89.1 with `--tmg-ripup`, which took 12 minutes instead of 2.5; at 2b82c40,
seeds 1 and 2: 88.9 and 82.6 MHz with the bench's flags, 81.7 and 79.6 with `--placer static`), so the bench
keeps its flags. The
figures are also in `docs/timing.json` (one entry per design: `fmax_mhz` per seed, `median_mhz`, `luts`,
`ffs`, `dsps`, `brams`, the date and the commit timed). Rows keep the commit they were measured at: a
row older than the last change to its block is history, not the current figure.

Slowest first:

<!-- begin table -->
{table}
<!-- end table -->

## Reset

A system's reset comes from a register and fans out to every flip-flop it clears, so it is a timed path
like any other: with every register reset, the reset net itself was the critical path of the softmax unit
(11.5 ns of routing) and of the array with block RAM FIFOs (8.9 ns). Only the state that says what is
valid is reset now; everything a valid bit qualifies is reset-less (Amaranth `reset_less=True`, and the
pipeline helpers of `hdl/pipeline.py` unless asked for `reset=True`):

| block | reset | not reset (don't-care until a valid bit says otherwise) |
|---|---|---|
| systolic array, PE | admission flags and credits, the valid skew, each PE's valid, `finished` and `result_valid`, the drain's valid chain | operands, `first`/`last` flags, products, accumulators, results, drain words, the per-row drain loads |
| credit FIFO, register slice | pointers, counts, empty/full/valid flags | entries, output payload register |
| softmax unit | credit counters, the slot-hazard window's valid bits, the stage valid chain, FIFO write enables | scores, logits, maxima, probabilities, row sums, reciprocals, the per-lane shift copies, FIFO write data |
| output accumulator | stage busy bits, the emit chain, reciprocal `present` bits and bank pointers, output credit, `block_done` | beats, words, products, shift amounts, biases, results, held reciprocals |
| scheduler | `busy`, `done`, `error`, set-up and walker valids, the packer's fill count and flags, `tiles.valid` | run registers (loaded at `start`), coordinates and counters (loaded at set-up), tile payload |
| engine glue | run state (`busy`, `done`, counters), buffer flags (`p_complete`, `q_full`), the operand stage's valid, FIFOs | probability buffers and factors, the operand stage's data |
| multiplier, reciprocal, exp2 | nothing | everything (the DSP's RST pins stay unconnected) |

Reset in the middle of a run stays bit-exact on both simulators (the reset-in-the-middle tests of the
array, softmax unit, scheduler, top-k and engine, and the ECP5-primitive engine). After `synth_ecp5`
the default 8×8 engine's reset net drives 618 of its 39,541 flip-flops (commit eecf3db; counted on
the `LSR` pins of the Yosys netlist; the 4×4 proxy: 431 of 16,768), where it drove all of them before;
1,017 of 40,321 at 54f9bf9, the difference being the reset flip-flop copies of replicated controls
(`kept_register`, below), which must leave reset equal to the register they copy.

That net was still the 8×8 engine's critical path at a1f5b04 (seed 2: 13.4 ns of routing to a softmax
valid flip-flop; 1,313 loads at 889049e). Since e012f80 the engine distributes its reset through a
registered, replicated tree (`hdl/reset_tree.py`): each unit (the array, the softmax unit, the output
accumulator, the scheduler, the two register slices, and the importance and row-flag units of the
builds that have them) and the engine's own glue moves to a clock domain of its own, clocked by `sync`
and reset by a flip-flop copy of `sync`'s reset (a `TRELLIS_FF` that Yosys cannot merge with its
equals on the ECP5 target). The root then drives 13 loads (8 copies and the port gates), and each copy
its own unit's: glue 405, array 337, accumulator 325, softmax 164, accumulator slice 36, softmax slice
27, scheduler 22 (`LSR` pins after `synth_ecp5`, e012f80). Every copy is one register deep, so every unit
enters and leaves reset on the same edge, one cycle after the engine's reset (the engine's
`reset_latency`); the stream ports show `tready` and `tvalid` low from the first cycle of the reset
until that cycle has passed, so nothing is taken or sent while any part of the engine is in reset,
even for a one-cycle reset, in which the units still hold the run's state for a cycle
(the engine testbench resets for 1-3 cycles mid-run with the sources offering beats, and checks the
ports every cycle of it; with the input readies left ungated that check fails).

## What cut each path

Each row: one block of the default engine (seed 1, reset timed, router2), its Fmax and critical path
before a change, and after it.

| block | before | change | after |
|---|---|---|---|
| engine.array | 56.1 MHz: the register result FIFO's write-address decode (16.8 ns routing) | result FIFO in DP16KD with its output register | 101.5 MHz: the reset net to the FIFO ring (8.9 ns routing) |
| engine.array | 101.5 MHz: reset net | datapath reset-less | 94.9 MHz: the bottom PE's `result_valid` loading a whole drain column (~200 flip-flops, 9.8 ns routing) |
| engine.array | 94.9 MHz: drain load | each row's load from its own PE, delayed to the bottom PE's moment | 119.0 MHz: one `valid_a0` flip-flop per anti-diagonal (Yosys merges equal flip-flops) enabling eight PEs' accumulators (7.9 ns routing) |
| engine.softmax | 80.5 MHz: the reset net to a row-sum delay register (11.5 ns routing) | datapath reset-less, DP16KD FIFOs | 102.4 MHz: `distance` → the exp2 step table (5 LUT levels, 8.1 ns routing) |
| engine.output_accumulator | 60.5 MHz: the rescale shift amount (an adder and a compare) into a 40-bit shifter | amounts and rounding bias as registers a stage early; the normalize step in four stages; saturation by a sign reduction | 70.2 MHz: Yosys's mapping of a 34×17 multiply (DSP pieces joined by an unregistered fabric adder) |
| engine.output_accumulator | 70.2 MHz | the engine's multiplier target (registered MULT18X18D pieces and adder) | 82.7 MHz: the accumulator RAM's unregistered output into the DSP |
| engine.output_accumulator | 82.7 MHz | RAM output register; hazard on (row, chunk); output credit and `block_done` registered | 64.6 MHz: the credit flag's next state computed after admission (a regression, fixed by selecting between two register comparisons) |
| engine.scheduler | 59.5 MHz: the block counter `i0` into the walk-range arithmetic | reset-less run registers | 65.2 MHz: the same arithmetic (`advance` of the query coordinates) |
| engine.scheduler | 65.2 MHz | the dense build's pattern a constant (its walk-range logic is dead) | 117.7 MHz: `i0`'s carry chain |
| engine_proxy | 66.4, 59.5 MHz: the accumulator's `scaled` path; the slice → accumulator → `blocks_open` path | all of the above | 67.9 MHz (seed 1): the engine's issue logic (`p_complete` → value/score selection → every operand-stage enable, 12.1 ns routing) |
| engine.output_accumulator | 64.6 MHz | per-lane copies of the shift amounts | 97.2 MHz (ABC9 maps it again): the output FIFO's read address into its read data |
| engine.array | 119.0 MHz | the accumulator's enable and select and the result load as each PE's own flip-flops (`kept_register`: `TRELLIS_FF` instances, which Yosys does not merge) | 132.6 MHz: the result FIFO's `ring_empty` selecting the 177-bit output register's input (6.6 ns routing) |
| engine.softmax | 113.5 MHz: `distance` → the exp2 step table | the exp2 tables read in two stages (candidates by the low three index bits, then one by the high bits) | 121.1 MHz: the octave shift of the probabilities |
| engine.softmax | 113.6 MHz (447dd61): the octave count → the coarse probability shift, six LUT levels: the shift amount kept the full width of `distance >> F` though it is capped at P + 1 | shift amounts as wide as their caps (`exponent()` in `hdl/softmax.py`) | 135.9, 128.0 MHz (seeds 1, 2; 9bbee90, softmax unchanged since): the sums FIFO's read side (`sums.ready` → its stored-word register); the row sum → the reciprocal's leading-zero count (one priority encoder of the row sum's width) |
| engine.output_accumulator | 94.2, 103.7 MHz (447dd61, seeds 1, 2): the admission (slice output → hazard compare with the stage words → ready → the output-credit carry chain); one lane's copy of the rescale shift → its six-level shifter (7.7 ns routing) | the input slice moved into the unit (the engine's `acc_slice` removed); a shadow ring of its two entries holds each waiting beat's stage matches (compared as it arrives, then shifted with the stages); emitting beats counted a cycle late; the rescale shift in two stages (multiples of 8, then 0-7) with per-lane copies | 90.4 MHz: `shadow_r` → the hazard → admission → the input slice's `full` copies (2.1 ns logic, 8.9 ns routing) |
| engine.output_accumulator | 90.4 MHz | admission an AND of flip-flops: the hazard and reciprocal-present flags of the next head computed a cycle ahead for both outcomes of the current admission | 88.2 MHz: `present` → that lookahead (3.4 ns logic, 7.9 ns routing) |
| engine.output_accumulator | 88.2 MHz | the lookahead skips the head's clear (never needed by the entering beat); block end flagged per entry on arrival | 99.0 MHz: the reciprocal slots' write enable, decoded after `recips.ready`, into 24 flip-flops' CE (4.1 ns) |
| engine_sparse.scheduler | 62.3 MHz (f9cedad): `i0`'s adder → the last-block compare → the walk range's reach adders → `hi` (5.9 ns logic, 10.1 ns routing); 53.7 MHz (c973873) with the causal patterns' compares of the walked key against each row's position | the window, dilated and causal masks from two counters per row (`b_r − j`, `j − a_r`, primed once per block: the mask is their sign bits); the last-block flag and the walk range's ends registered a phase early | 71.3 MHz (988a10f): the grid pattern's coordinate distances (`kc` → a subtract and a compare per row and axis → `include`; 4.4 ns logic, 9.6 ns routing). Registering the grid's bounds per row instead made Yosys 0.70's `synth_ecp5` emit a net driven by two `table` flip-flops, which nextpnr refused: not kept |
| engine.output_accumulator | 99.0 MHz | a one-hot fill pointer (each slot's enable one gate of flip-flops) | 86.9 MHz: the head's row → the reciprocal read multiplexer (two hops of 3.2 and 4.0 ns) |
| engine.output_accumulator | 86.9 MHz | (ffebe36) the admitted beat's reciprocal read a stage later by the stage-1 row | **105.1, 108.1 MHz** (seeds 1, 2): single nets, `shadow_r` → the accumulator RAM's address (7.3 ns: its DP16KD sit 45 rows apart), the input slice's entry write enable (7.6 ns) |
| engine.output_accumulator | 105.1, 108.1 MHz | one memory per lane (a DP16KD each), each read and written by its own copies of the address and enable made from next-state values; register slices write their free entry every cycle (`i.valid` reaches only their flags); the normalize shift's constant part (`R`) as wiring | 101.9, 116.5 MHz (seeds 1, 2; 58e1aea): the reciprocal-present lookahead, from the sums handshake (`arrives`) through the `present` and fill-slot bit selects to `recip_ok` (2.4 ns logic, 7.4 ns routing) |
| engine.output_accumulator | 101.9, 116.5 MHz | a reciprocal counts for admission from the cycle after it arrives | 113.4, 105.8 MHz (seeds 1, 2; a3202b3): seed 1 the rescale shift amount's add and clamp → the lanes' coarse shift copies (2.9 ns logic, 5.9 ns routing); seed 2 the output FIFO's read multiplexer (a pointer copy → 18 entries of flip-flops → its output register, 7.8 ns routing) |
| engine.output_accumulator | 113.4, 105.8 MHz | the rescale shift amount made two stages early, its lane copies fed from a register | 96.0 MHz (seed 1, d580c71): the reciprocal-present lookahead again (the head/younger select → the `present` bit of its row → `recip_ok`, 2.1 ns logic, 8.3 ns routing); this block moves by 8-17 MHz from seed to seed and commit to commit with its logic unchanged on the path, so one seed does not rank two commits |

The whole 8×8 engine (`engine`, seed 1), each step measured:

| commit | Fmax | critical path | change that followed |
|---|---|---|---|
| ca4d6bc | 52.3 MHz | `p_rptr` → probability buffer complete → value/score selection → `k.valid` → issue → the operand stage's enables (17.2 ns routing) | `value_ready` and the operand select as flip-flops from next-state values; the operand stage loads whenever it is free |
| eecf3db | 57.5 MHz | `p_rptr` → the probability buffers' read multiplexer → `st_p` (13.6 ns routing) | per-row copies of the buffer selectors; per-(buffer, row) registered write enables |
| 00b8a6e | 75.4 MHz | `sel_value` → the K/V multiplexer of the 64-bit operand stage (12.5 ns routing) | per-column copies of the select |
| af67ec4 | 49.7 MHz | `st_last` → the array's ready → the load enable of the 192 operand-stage flip-flops (19.3 ns routing) | reverted (1890917): the enable, not the select, is the wide net to cut next |
| 1890917 | 75.4, 63.0 MHz (seeds 1, 2) | seed 1 as 00b8a6e; seed 2: the accumulator slice's `r_ptr` → its 220-bit output multiplexer → the accumulator's reciprocal select (14.2 ns routing) | the widest nets cut (below): copies of the operand stage's select, valid and last and of the array's new `accepts_end` per column and per row; pointer copies per 32 bits in register slices and credit FIFOs; the start check registered |
| 54f9bf9 | 73.1, 64.7 MHz (seeds 1, 2; median 68.9) | seed 1: the accumulator's admission: a slice pointer copy → the beat's `chunk` → the hazard compare with the stage words → `partials.ready` → the reciprocals' `present` bits (2.3 ns logic, 11.4 ns routing); seed 2: one lane's copy of the rescale shift amount → that lane's shifter, a single net of 13.7 ns | the accumulator's admission from flip-flops and its rescale shift in two stages (table above) |
| ffebe36 | 65.4, 74.2 MHz (seeds 1, 2; median 69.8) | the accumulator's admission is gone from both (table above: its block went from 94.2 to 105.1 MHz); seed 1: the issue loop through the tag FIFO, its level → `w_rdy` → the issue decision → the tag write → its level, the FIFO sitting by the array's output 44 rows from the issue logic (1.9 ns logic, 13.4 ns routing); seed 2: the accumulator's `present` bits → `recips.ready` → the softmax's sums FIFO read side → its count (2.7 ns logic, 10.7 ns routing) | room for a tag as a flip-flop two entries early and the tag written a cycle after its issue; `recips.ready` a flip-flop from next-state values |
| 3f439bd | **71.9, 72.2 MHz** (seeds 1, 2; median 72.0) | seed 1: the issue decision again, now from the operand stage's valid → `value_ready` → tag room → issue → the score-tile FIFO's read enable, 21 columns away (2.0 ns logic, 11.9 ns routing); seed 2: the tag FIFO's read address → the head tag's `value` bit (distributed RAM) → the accumulator's `partials.valid` → its input slice's entry enables (2.4 ns logic, 11.5 ns routing) | a score tile leaves its FIFO the cycle after its first step, by a flip-flop (its head's end flags kept from that step; a bubble only between one-step tiles, head_dim 1); the tag carries a bit per row for "emits" and "ends the block" (the router picks its row's bit instead of comparing the row with the count); register slices write their free entry every cycle, so `i.valid` reaches only their flags |
| c941458 | **83.5, 72.2 MHz** (seeds 1, 2; median 77.9) | seed 1: one row's copy of the probability-buffer selectors → its 24-way read multiplexer (3 buffers × 8 keys) → the operand stage (188 LUTs a copy; 1.7 ns logic, 10.3 ns routing); seed 2: the tag FIFO's read address → its distributed RAM → the tile's chunk and flags → the accumulator's arrival compares with its pipeline → its hazard lookahead (2.4 ns logic, 11.5 ns routing) | the tag's control fields (30 bits) in a FIFO with an output register, its data fields (factors, mask) still falling through from distributed RAM; selector copies per 4 bits of each row's probability; in the accumulator one memory per lane with its own address and enable copies |
| 58e1aea | 48.6, 69.9 MHz (seeds 1, 2; median 59.3) | both seeds: `j` (the value tile's key counter) → its last-key compare (a carry chain) → its next state → the 160 selector copies, spread over the probability buffers (3.2 ns logic, 17.3 ns routing at seed 1): four times the copies made their common source the worst net | selector copies back to one per row (the tag FIFO split and the accumulator's changes kept); a reciprocal counts in the accumulator from the cycle after it arrives |
| a3202b3 | **72.6, 79.8 MHz** (seeds 1, 2; median 76.2) | seed 1: a row's copy of the probability-buffer selectors → its 24-way read multiplexer → the operand stage, as at c941458 (1.7 ns logic, 12.0 ns routing); seed 2: the value tile's key counter `j` → its last-key compare (a carry chain) → `value_frees` → the next states of `vl_done` and `value_ready` → the operand select's column copies (4.0 ns logic, 8.5 ns routing) | the probability buffers as one distributed-RAM memory per query row (a word per buffer: the row's probabilities and factor, read asynchronously by the row's copy of `p_rptr`, then an 8-way select by `j`), no longer 1,536 flip-flops; `j`'s last key an equality with the tile's stored `keys_last`, the last chunk a flip-flop set as the chunk counter moves, the score tile's last step an equality with `head_dim − 1` (no carry chain in front of the issue logic) |
| dd1417d | 83.3, 69.1 MHz (seeds 1, 2; median 76.2) | both paths above gone. Seed 1: Q's block RAM (REGMODE NOREG: 5.8 ns clock-to-output) → the array's operand multiplexer → its input register (6.5 ns logic, 5.5 ns routing); seed 2: the accumulator's input port (the engine's tag and row) → its arrival compares with the pipeline → the hazard lookahead (2.1 ns logic, 12.3 ns routing). 28,562 LUT4 (−444), 36,849 FF (−3,594), 396 TRELLIS_DPR16X4 | Q read a cycle ahead by the next-state score counter and bank, through the DP16KD's output register (`hdl/block_ram.py`, OCEB the operand stage's enable); the accumulator's memories the same way; a front register slice before the accumulator's input slice (its arrival compares read flip-flops); the SpAtten row flags' shift and compare in stages of their own; the softmax's exp2 interpolation and probability sum one adder level per stage |
| 6a0052e | 72.4, **86.1 MHz** (seeds 1, 2; median 79.2) | Q's block RAM and the accumulator's arrival are gone from both. Seed 1: a row's copy of `p_rptr` → its probability memory's read address → the 8-way key select → the operand stage, the copy's one net 9.8 ns (1.5 ns logic, 12.3 ns routing); seed 2: the array's `may_end` → the issue decision → `sc["k"] + 1` (a carry chain) → Q's read address at the DP16KD (2.2 ns logic, 9.4 ns routing). 28,857 LUT4, 37,624 FF, 46 DP16KD (Q and the accumulator in 18-bit DP16KD with their output registers: +10) | each row's memory written from its own copy of the arriving word (one register broadcast to all rows pulls each row's RAM cells towards it bit by bit); the counters' successors as registers (no carry chain after the issue decision) |
| a455140 | stopped | seed 1 ran over 40 minutes without finishing (12 minutes a seed before): the per-row copies of the arriving word (1,200 kept flip-flops) were reverted in f5cd90a; the successors kept | Q in two copies, read at the current score step and at the step after it, both addressed by flip-flops, a flip-flop picking the one the operand stage needs (the issue decision no longer reaches the DP16KD address pins); a Q bank full a cycle after its last beat lands (a correctness fix the read a cycle ahead needs: `tests/test_engine.py::test_one_beat_queries_back_to_back_at_full_rate`) |
| f5cd90a | 74.9, 79.3 MHz (seeds 1, 2; median 77.1) | seed 1: the tag FIFO's read address → its distributed RAM (the data fields: factors, mask) → the row's factor → the accumulator's front slice (1.4 ns logic, 12.0 ns routing; the address flip-flop's one net 8.4 ns); seed 2: the Q load's beat counter (also the DP16KD write address) → its last-beat compare and the block counter's carry chains (3.3 ns logic, 9.3 ns routing). 28,982 LUT4, 37,640 FF, 114 MULT18X18D, 50 DP16KD (Q twice, 8) | next: the tag's data fields through an output register (as its control fields since c941458), and the probability read from candidates made a cycle early (the operand of this step, of the next key, of the next tile's first key), so that no selector copy and no issue decision is on a path into the buffers |
| 84a1671 | 76.8, 51.4 MHz (seeds 1, 2; median 64.1) | Q load's carry compares gone (flags as flip-flops). Seed 1: the tag FIFO's read address → its distributed RAM → the engine's new accumulator slice, the address flip-flop's one net 8.45 ns to 60 RAM cells (1.5 ns logic, 11.5 ns routing): the slice moved the end of the path, not its long net; seed 2: the accumulator's input-slice flag → its admission → the next-state read address → the eight lanes' address copies at their DP16KD (1.4 ns logic, **18.1 ns** routing): a next-state value fanned out to copies that sit at block RAMs across the die, the 58e1aea lesson inside the accumulator. 29,332 LUT4, 38,307 FF, 114 MULT18X18D, 50 DP16KD, 2,975 CCU2C; 22 minutes. `--deep-paths` at this commit: 1,154 of 59,609 endpoints estimated over 6.67 ns (accumulator 428, engine glue 255, scheduler 209, softmax 176) | the tag's data fields in a FIFO per row (a read pointer per 8 RAM cells); both outcomes of the issue decision made ahead of it and chosen by it; room in `score_tiles` as a flip-flop |
| e5d4bf7 | **89.7, 79.4 MHz** (seeds 1, 2; median **84.6**) | both paths above gone. Both seeds: the accumulator's input: the front slice's read pointer (its payload multiplexer's select) → the arriving beat's compares with the pipeline's words → the hazard look-ahead (8 LUT levels; 2.6 ns logic, 8.5 and 10.0 ns routing). 29,660 LUT4, 38,400 FF, 114 MULT18X18D, 50 DP16KD, 3,017 CCU2C; 20 minutes | the arrival compares made for both of the front slice's entries from their flip-flops and picked by its head select; the accumulator's read address from a register to the lanes' copies (read at stage 4) |
| a1f5b04 | 80.1, 69.6 MHz (seeds 1, 2; median 74.8) | the accumulator's arrival compares and its read address are gone from both seeds. Seed 1: the accumulator's `recips.ready` loop (`recips.ready` → the arrival of a reciprocal → the `present` bits → `recips.ready`, 7 LUT levels; 2.2 ns logic, 10.3 ns routing); seed 2: the reset net, from the wrapper's reset register to a softmax stage-valid flip-flop (0.9 ns logic, **13.4 ns** routing): the first time since the datapath went reset-less that the reset is a critical path. 29,936 LUT4, 39,181 FF (+781: the accumulator's two extra stages), 114 MULT18X18D, 50 DP16KD, 3,016 CCU2C; 21 minutes. Seed to seed this is within the engine's usual spread of 7-11 MHz; neither path is one the change made | (ceeb505, not timed) `recips.ready` for each outcome of the arrival and the admission, chosen by them; next: a registered reset tree per unit (the issue's item 1 allows it where the fan-out needs it, and seed 2 now shows it does) |
| e012f80 | 62.6, 71.7 MHz (seeds 1, 2; median 67.2) | the reset tree in place (`hdl/reset_tree.py`; ceeb505's `recips.ready` split and da8491e in it too): no reset net and no accumulator path in either seed. Both seeds: the probability buffer's read, a query row's `p_select` copy (a flip-flop) → its LUTRAM's read address → the 8:1 lane multiplexer → the operand register `st_p` (1.5 ns logic; 14.5 and 12.5 ns routing: in seed 1 the copy sits 31 columns from its RAM, one 9.7 ns net). 29,963 LUT4, 39,196 FF, 114 MULT18X18D, 50 DP16KD, 3,015 CCU2C; 43 minutes (placement 3.5-5.3 and routing 8.6 minutes per seed, on a fresh machine) | (not timed) the walker's look-ahead bounds and the scan/room flags reset-less |
| 5514968 | **77.7, 75.2 MHz** (seeds 1, 2; median **76.4**) | only the ports gated by the reset (at e012f80 the accumulator's `out.ready` was gated too, which put the reset into its credit count: the 4×4 proxy's critical path at 2b82c40, 88.9 and 82.6 MHz). Seed 1: the issue decision, a FIFO's output register → the probability buffer's completion flag → `own_ok` → an operand-select copy `sel_value_c1` (2.0 ns logic, 10.8 ns routing); seed 2: the probability buffer's read again (`p_select_2_1` → its LUTRAM → `st_p`, 1.5 ns logic, 11.8 ns routing). 29,970 LUT4, 39,196 FF, 114 MULT18X18D, 50 DP16KD, 3,016 CCU2C; 35 minutes. `--deep-paths`: 1,193 of 60,838 endpoints estimated past 6.67 ns | - |
| 2da3daa | 79.5, 68.8, 84.8 MHz (seeds 1, 2, 3; median **79.5**; seeds 1 and 2 alone 74.2) | issue 21's decoder logic: the start check's division `heads / kv_heads` (a quotient bit a cycle), the `kv_heads` and `query_len` registers, the scheduler's `query_len·group` product (one more MULT18X18D), query counters wide enough for a group's stacked queries. No path of that logic in any seed: seeds 1 and 2 the output accumulator (its `entry_1` → `recips.ready`, 2.5 ns logic, 10.1 ns routing; `entry_1` → a stage flag, 2.2 + 12.4 ns), seed 3 the issue decision (`q_same_address` → `sel_value_c5`, 2.1 + 9.7 ns). 30,267 LUT4, 39,319 FF, 115 MULT18X18D, 50 DP16KD, 3,075 CCU2C; 44 minutes for three seeds; seed 3 was run after seeds 1 and 2 on the same HDL and merged into their entry | - |

The sparse engine (`engine_sparse`: max_seq_len 4096, sparse) at e4422fc, seed 1 (its log kept as
`pnr/12bdb51c033b-seed1.log`; seed 2 ran over 45 minutes and was stopped, so the table has no row):
47.2 MHz, 35,370 LUT4, 44,063 FF, 133 MULT18X18D, 36 DP16KD. Critical path: the start check, a runtime
register → the scheduler's grid multiplier (`grid_h·grid_w == seq_len`, 3.9 ns inside the DSP) →
`started` → every start-time load (21.2 ns). Since 54f9bf9 a start takes the runtime registers into
flip-flops and checks them there over three cycles (the product a stage earlier), then starts the run or
raises `error`. The sparse engine at 54f9bf9 has not been timed: its seed-1 run did not finish in 40
minutes and was stopped for the test suite.

The SpAtten engine (`engine_spatten`: the default engine with `importance` and `row_flags`), first timed at
d580c71, seed 1 (14.7 minutes): 64.4 MHz, 34,069 LUT4, 43,343 FF, 122 MULT18X18D, 44 DP16KD. Its critical path is
inside the row-flags unit (`hdl/row_flags.py`): a registered shift → a carry chain through 22 bits
(`rne(2^P · r, …) < threshold`) → the queue's write data → the row's flag (3.6 ns logic, 12.0 ns routing).
Since 31c522e the shift and the compare each have a stage of their own (the flag collected a stage later,
room for four beats in the stages); the SpAtten engine has not been timed since.

The widest nets of the 8×8 engine after synthesis (`--widest-nets`), at e4422fc and at 54f9bf9: the
accumulator's output-FIFO read address (661 and 594 LUTs), the array result FIFO's `ring_empty` (520)
and `ring_r` (384), `p_rptr` (364 and 193: the tile tags' factor select), the register slices' write enables
(295 and 197 per entry), the accumulator's `first` (272), Yosys's read/write-collision bypass on the
accumulator RAM (272), the tag FIFO's output-register enable on `c.ready` (266), the result FIFO's ring
enables (257) and the normalize shift (201); at 54f9bf9 no net but the reset (1,017 `LSR` pins) reaches
more than 180 cells, and those are each query row's own copies of the probability selectors. The engine's
Fmax did not move (69.2 → 68.9 MHz median): with the wide nets gone, its critical paths are single nets
of 11-14 ns between blocks placed far apart, and a long combinational admission inside the accumulator.
Cutting fan-out was necessary and is not sufficient; what limits the rest is distance, which takes
pipeline registers between units (and between a control's source and its far users), not more copies.

**What limits the rest (2026-12-05, measured on the paths above).** On the LFE5U-85F-6 one routed hop
between neighbouring slices costs 0.4-1.1 ns and a LUT 0.24 ns; a net that crosses the die costs 3-8 ns
by itself: in the accumulator alone, `shadow_r` → its RAM's address 7.3 ns (its DP16KD sit 45 rows
apart), the input slice's write enable to 32 flip-flops' CE 7.6 ns; in the engine, the issue logic →
the tag FIFO 4.1 ns over 31 rows, the accumulator → the softmax's sums FIFO 3.9 ns over 31 rows. The
DSP and block-RAM rows fix where the array, the accumulator's 24 MULT18X18D and the FIFOs sit, so the
blocks are far apart by construction. At 150 MHz (6.67 ns, 0.52 of them clock-to-output) such a net
leaves no room for logic: every control that crosses a block must leave one flip-flop and land in
another (with the decision made a cycle ahead, as the accumulator's admission and `recips.ready` now
are), and a control reaching a wide, spread datapath needs a registered fan-out tree (a copy per
region, a cycle early). The blocks alone are at 105-141 MHz and the engine at 72-84 MHz for that
reason: each change here removed the worst such path, and the next one is of the same kind. The
58e1aea step shows the other side: copies multiply the nets of their common source, and when that
source is combinational (a next-state value, made from a counter's carry chain) its fan-out to the
copies becomes the long net (17.3 ns). Seed to seed the engine moves by 7-11 MHz at one commit
(83.5 and 72.2 at c941458; 72.6 and 79.8 at a3202b3), which is as much as one change gains: two seeds
are the least that tells a change from placement luck.

**Seventh session (2026-12-05).** The reset goes through a registered, replicated tree (section *Reset*),
and no seed names it any more; the engine stands at 76.4 MHz median (77.7, 75.2) at 5514968, against
84.6 at its best (e5d4bf7) and 74.8 at a1f5b04: within the seed spread of every step before. Both seeds
name the probability buffer (its LUTRAM read, or the issue decision that selects the next operand):
a flip-flop placed tens of columns from the RAM or copies it drives, with 11-12 ns of routing and
1.5-2 ns of logic. nextpnr's electrostatic placer (`--placer static`) was no better on the proxy (81.7
and 79.6 MHz against 88.9 and 82.6). On this machine an 8×8 run took 35-43 minutes for two seeds
(placement 3.5-5.3 and routing 5-8.6 minutes per seed).

**Since then (2026-12-05, sixth session).** `--deep-paths` found the engine's logic cones in a minute
each (1,154 endpoints estimated over 6.67 ns at 84a1671: the accumulator 428, the engine's glue 255, the
scheduler 209, the softmax 176), and the changes of 84a1671, e5d4bf7, a1f5b04 and ceeb505 cut the ones
place and route also named: 77.1 → 64.1 → **84.6** → 74.8 MHz median. The best median so far (e5d4bf7,
89.7 and 79.4) sits 65 MHz under the floor. What each run names now is inside the output accumulator
(its admission look-ahead, its `recips.ready` loop), a reset net of 13 ns, and, estimated but not yet
named by a seed, the issue decision → the value tiles' FIFO read, the array's `c.valid` → the tag FIFO's
level, and the softmax's admission (its slot hazard and credits, 9-10 estimated LUT levels). The blocks
alone are at 96-141 MHz (the accumulator 96.0 at d580c71, the slowest): the engine cannot pass 150
before its accumulator does, and the accumulator's read-modify-write hazard check (a beat compared
with every stage in flight) is the structure to replace, for instance by a check per tile (beats of a
tile come in row order, so a word can only meet the same row of an earlier tile of the same chunk).

The 4×4 proxy at the same commits: 81.3, 75.2, 83.9 and 92.0 MHz; at 0dbfcfc (HDL as f5cd90a but for two
structural fixes) 98.3 MHz (seed 1) against the 8×8's 74.9 and 79.3: 24-31% over. It finds the engine's logic-depth
paths (its critical paths were the start check into the cycle counter and the probability-buffer
write enable) but not the 8×8's fan-out paths, which are four times wider (64-bit operands, 8×8
buffers): it over-predicted the 8×8 by 55%, 31%, 11% and 85%, and moved the other way on the last
change. Since the reset-less datapath and the block-RAM FIFOs, one
8×8 run takes about 12 minutes here (it took 1-2 hours with flip-flop FIFOs), so the 8×8 itself is the
figure to time; the proxy remains a 3-minute check of logic depth.

## Critical paths

The clock-to-clock path that sets Fmax, per seed. nextpnr reports one critical path per clock, not the
worst N: the worst paths of a design are found block by block (the `engine.<block>` rows) and seed by
seed. The hierarchical cell names lead to the Amaranth module (`inner.softmax.…` is `hdl/softmax.py`
inside the engine):

<!-- begin paths -->
{paths}
<!-- end paths -->
"""
