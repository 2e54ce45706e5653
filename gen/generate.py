"""Turn validated parameters into Verilog and a manifest; cache conversions per parameter set.

Configuration stays apart from hardware: a :class:`Unit` names the
parameter validator, the component class and the testbench of one block,
and everything here works from a plain parameter dict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth.hdl import Shape
from amaranth.lib import data

import attn_rtl
import attn_rtl.hdl
from attn_rtl.gen.flows import emit
from attn_rtl.gen.flows.collateral import DEFAULT_CLOCK_MHZ, LINT_WAIVERS_FILE, check_clock_mhz, fusesoc_core, sdc, xdc
from attn_rtl.gen.provenance import VERSION, header_comment, provenance
from attn_rtl.hdl.diagonal_scheduler import DIAGONAL_SCHEDULER_DEFAULTS, DiagonalScheduler, diagonal_scheduler_params
from attn_rtl.hdl.engine import ENGINE_DEFAULTS, engine_params
from attn_rtl.hdl.engine_axil import AttentionEngineAxiLite
from attn_rtl.hdl.engine_mm import MEMORY_DEFAULTS, AttentionEngineMM, mm_params
from attn_rtl.hdl.engine_top import AttentionEngineAxi
from attn_rtl.hdl.global_row import GLOBAL_ROW_DEFAULTS, GlobalRow, global_row_params
from attn_rtl.hdl.serial_softmax import SERIAL_SOFTMAX_DEFAULTS, SerialSoftmax, serial_softmax_params
from attn_rtl.hdl.output_accumulator import ACCUMULATOR_DEFAULTS, OutputAccumulator, accumulator_params
from attn_rtl.hdl.softmax import SOFTMAX_DEFAULTS, SoftmaxUnit, softmax_params
from attn_rtl.hdl.sparse_scheduler import PATTERN_CODES, SCHEDULER_DEFAULTS, SparseScheduler, scheduler_params
from attn_rtl.hdl.systolic_array import ARRAY_DEFAULTS, SystolicArray, array_params
from attn_rtl.hdl.topk import TOPK_DEFAULTS, TopK, topk_params

__all__ = ["Unit", "UNITS", "BLOCKS", "unit", "elaborate", "verilog_source", "cached_verilog", "write_outputs",
           "manifest"]

HDL_DIR = Path(attn_rtl.hdl.__file__).resolve().parent
#: Behavioural models of vendor primitives, for simulation only (never for synthesis).
MODELS_DIR = HDL_DIR / "models"


@dataclass(frozen=True)
class Unit:
    """One generatable block: how to validate its parameters, build it and test it."""
    name: str
    top: str
    defaults: dict
    validate: Callable[..., dict]
    component: Callable[..., object]
    testbench: str
    description: str
    simulation_models: Callable[[dict], list] = lambda params: []


def _ecp5_models(params: dict) -> list:
    """Simulation models of the ECP5 primitives a parameter set instantiates."""
    ecp5_multipliers = [MODELS_DIR / "MULT18X18D.v", MODELS_DIR / "TRELLIS_FF.v"]   # and the PEs' kept flags
    return (ecp5_multipliers if params["multiplier"] == "ecp5" else []) + \
           ([MODELS_DIR / "DP16KD.v"] if params["fifo_memory"] == "ecp5" else [])


UNITS = {
    "array": Unit(name="array", top="systolic_array", defaults=ARRAY_DEFAULTS, validate=array_params,
                  component=SystolicArray, testbench="attn_rtl.tb.test_systolic_array",
                  description="output-stationary systolic MAC array (C = A·B)",
                  simulation_models=_ecp5_models),
    "softmax": Unit(name="softmax", top="softmax_unit", defaults=SOFTMAX_DEFAULTS, validate=softmax_params,
                    component=SoftmaxUnit, testbench="attn_rtl.tb.test_softmax",
                    description="streaming online softmax (probabilities, rescale factors, row sums, reciprocals)",
                    simulation_models=_ecp5_models),
    "engine": Unit(name="engine", top="attention_engine", defaults=ENGINE_DEFAULTS, validate=engine_params,
                   component=AttentionEngineAxi, testbench="attn_rtl.tb.test_engine",
                   description="fused attention engine (Q·Kᵀ, online softmax, P·V on one systolic array)",
                   simulation_models=_ecp5_models),
    "scheduler": Unit(name="scheduler", top="sparse_scheduler", defaults=SCHEDULER_DEFAULTS,
                      validate=scheduler_params, component=SparseScheduler, testbench="attn_rtl.tb.test_sparse_scheduler",
                      description="sparse-window scheduler (key tiles and masks of window, dilated, grid, "
                                  "global-token patterns)"),
    "topk": Unit(name="topk", top="topk_engine", defaults=TOPK_DEFAULTS, validate=topk_params, component=TopK,
                 testbench="attn_rtl.tb.test_topk",
                 description="top-k engine (the k largest of a stream, as (index, value) pairs, largest first)"),
}


#: Top levels written beside a unit (not units of their own): simulated and cached like units.
COMPANIONS = {
    "engine_axil": Unit(name="engine_axil", top="attention_engine_axil", defaults=ENGINE_DEFAULTS,
                        validate=engine_params, component=AttentionEngineAxiLite, testbench="attn_rtl.tb.test_engine_axil",
                        description="the attention engine with its control on an AXI4-Lite register file",
                        simulation_models=_ecp5_models),
    "engine_mm": Unit(name="engine_mm", top="attention_engine_mm", defaults={**ENGINE_DEFAULTS, **MEMORY_DEFAULTS},
                      validate=mm_params, component=AttentionEngineMM, testbench="attn_rtl.tb.test_engine_mm",
                      description="the attention engine as a memory-mapped accelerator (AXI4 master DMA, "
                                  "AXI4-Lite registers, irq)",
                      simulation_models=_ecp5_models),
}


#: Blocks of the engine with a testbench of their own, simulated and cached like units (not offered by the CLI).
BLOCKS = {
    "accumulator": Unit(name="accumulator", top="output_accumulator", defaults=ACCUMULATOR_DEFAULTS,
                        validate=accumulator_params, component=OutputAccumulator,
                        testbench="attn_rtl.tb.test_output_accumulator",
                        description="the engine's output accumulator (rescale, add P·V, normalize)",
                        simulation_models=lambda params: _ecp5_models(
                            dict(params, fifo_memory="ecp5" if params["memory"] == "ecp5" else "registers"))),
    "global_row": Unit(name="global_row", top="global_row", defaults=GLOBAL_ROW_DEFAULTS, validate=global_row_params,
                       component=GlobalRow, testbench="attn_rtl.tb.test_global_row",
                       description="SALO's global PE row (a global query against every key of a diagonal run)",
                       simulation_models=lambda params: _ecp5_models(
                           dict(params, fifo_memory="ecp5" if params["memory"] == "ecp5" else "registers"))),
    "serial_softmax": Unit(name="serial_softmax", top="serial_softmax", defaults=SERIAL_SOFTMAX_DEFAULTS,
                           validate=serial_softmax_params, component=SerialSoftmax,
                           testbench="attn_rtl.tb.test_softmax",
                           description="the online softmax of one row, a lane a cycle (the global row's)",
                           simulation_models=lambda params: _ecp5_models(dict(params, fifo_memory="registers"))),
    "diagonal_scheduler": Unit(name="diagonal_scheduler", top="diagonal_scheduler",
                               defaults=DIAGONAL_SCHEDULER_DEFAULTS, validate=diagonal_scheduler_params,
                               component=DiagonalScheduler, testbench="attn_rtl.tb.test_diagonal_scheduler",
                               description="the sliding-window dataflow's scheduler (diagonal tiles, lanes, masks)"),
}


def unit(name: str) -> Unit:
    if name in COMPANIONS:
        return COMPANIONS[name]
    if name in BLOCKS:
        return BLOCKS[name]
    if name not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {name!r}")
    return UNITS[name]


def elaborate(unit_name: str, params: dict):
    """Validate ``params`` and construct the component (no elaboration happens yet)."""
    u = unit(unit_name)
    return u.component(**u.validate(**params))


def verilog_source(component, top: str) -> str:
    return emit.convert(component, name=top)


def _hdl_fingerprint() -> str:
    """Hash of everything the emitted Verilog depends on: the HDL sources and the emitter."""
    h = hashlib.sha256()
    shared = Path(attn_rtl.__file__).resolve().parent   # the numerics contract and validators the HDL imports
    for path in [*sorted(HDL_DIR.glob("*.py")), *sorted(shared.glob("*.py")), Path(emit.__file__)]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def cached_verilog(unit_name: str, params: dict, cache_dir: Path | None = None) -> tuple[Path, object]:
    """Verilog file for ``params``, converted once per parameter set and HDL source version."""
    from attn_rtl.sim.runner import default_cache_dir

    u = unit(unit_name)
    full = u.validate(**params)
    component = u.component(**full)
    # On a cache hit the component is only asked for its derived figures, never elaborated;
    # silence Amaranth's "created but never used" warning for it.
    component._MustUse__silence = True
    key = hashlib.sha256((json.dumps(full, sort_keys=True) + _hdl_fingerprint()).encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / "verilog" / f"{u.top}-{key}.v"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(verilog_source(component, u.top))
        tmp.replace(path)  # atomic: parallel workers never see half a file
    return path, component


def _layout_info(shape) -> dict:
    """Bit layout of a port's payload: struct fields with offsets, array elements with their shape."""
    if isinstance(shape, data.StructLayout):
        return {"fields": [{"name": name, "offset": f.offset, "width": f.width, **_layout_info(f.shape)}
                           for name, f in shape]}
    if isinstance(shape, data.ArrayLayout):
        elem = Shape.cast(shape.elem_shape)
        return {"elements": shape.length, "element_width": elem.width, "element_signed": elem.signed}
    return {}


def _shape_info(value) -> dict:
    shape = Shape.cast(value.shape())
    return {"width": shape.width, "signed": shape.signed, **_layout_info(value.shape())}


def manifest(unit_name: str, component) -> dict:
    """Every parameter, derived width, port and latency of a generated block."""
    u = unit(unit_name)
    axi = "aclk" in component.signature.members
    ports = [] if axi else [{"name": "clk", "direction": "in", "width": 1, "signed": False},
                            {"name": "rst", "direction": "in", "width": 1, "signed": False}]
    for path, member, value in component.signature.flatten(component):
        ports.append({"name": "__".join(str(p) for p in path), "direction": member.flow.value.lower()
                      if hasattr(member.flow, "value") else str(member.flow), **_shape_info(value)})
    derived = {"latency": component.latency} if hasattr(component, "latency") else {}
    if unit_name == "array":
        derived.update(acc_width=component.acc_shape.width, acc_signed=component.acc_shape.signed,
                       pe_count=component.rows * component.cols,
                       saturating=component.saturating, min_tile_spacing=component.min_tile_spacing,
                       result_fifo_depth=component.result_fifo_depth,
                       run_cycles="last step of the last tile + latency + rows (see docs/mac-array.md)")
    if unit_name == "scheduler":
        derived.update(setup_cycles=component.setup_cycles, max_blocks=component.max_blocks,
                       pattern_codes=PATTERN_CODES,
                       walk_cycles="per block: 2 + keys of the walk range + global_count (docs/sparse.md)")
    if unit_name == "softmax":
        derived.update(sum_latency=component.sum_latency, slot_recurrence=component.slot_recurrence,
                       row_sum_width=component.sum_width, probs_fifo_depth=component.probs_fifo_depth,
                       sums_fifo_depth=component.sums_fifo_depth)
    if unit_name == "topk":
        derived.update(index_width=component.index_width, key_width=component.key_width,
                       merge_levels=component.levels, level_run_beats=component.level_run_beats(),
                       bank_bits=component.bank_bits,
                       sort_latency=component.sort_latency)
    if unit_name == "engine":
        derived.update(memory_bits=component.memory_bits, score_width=component.score_width,
                       array=component.array_figures, output_acc_width=component.output_acc_width,
                       row_sum_width=component.nm.row_sum_width(component.params["max_seq_len"]),
                       max_chunks=component.max_chunks, start_latency=component.start_latency,
                       reset_latency=component.reset_latency)
        if component.params["importance"]:
            derived.update(token_importance_width=component.token_importance_unit.width,
                           token_importance_words=component.token_importance_unit.words,
                           head_importance_width=component.head_importance_unit.width)
    return {
        "unit": u.name,
        "top": u.top,
        "description": u.description,
        "generator": provenance(),
        "parameters": component.params,
        "derived": derived,
        "clock": "aclk, rising edge" if axi else "clk, rising edge",
        "reset": "aresetn, synchronous, active low" if axi else "rst, synchronous, active high",
        "ports": ports,
    }


def _stamped(name: str, text: str) -> str:
    """``text`` with a comment naming the generator (version, commit) in the file's own syntax; the SDC, XDC,
    register map and C header carry it already, the manifest in its ``generator`` entry."""
    if name.endswith(".v"):
        return header_comment("//") + text
    if name.endswith((".core", ".vlt")):   # the first line (CAPI=2:, `verilator_config) must stay first
        first, _, rest = text.partition("\n")
        return first + "\n" + header_comment("#" if name.endswith(".core") else "//") + rest
    return text


def write_outputs(unit_name: str, params: dict, out_dir: Path, *, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> dict:
    """Write into ``out_dir``: ``<top>.v``, ``<top>.manifest.json``, the FuseSoC core ``<top>.core``,
    out-of-context clock constraints ``<top>.sdc`` and ``<top>.xdc`` at ``clock_mhz``, simulation
    models of vendor primitives (``sim_models/``), Verilator lint waivers, and for the engine the AXI4-Lite register top
    ``<top>_axil.v`` with its register map (``<top>_regs.md``, ``<top>_regs.h``); for the memory-mapped top
    its register map and C driver (``<top>_driver.h``, ``<top>_driver.c``).  Return the paths."""
    from attn_rtl.gen.flows.regmap import c_header, markdown

    clock_mhz = check_clock_mhz(clock_mhz)
    u = unit(unit_name)
    component = elaborate(unit_name, params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {f"{u.top}.v": verilog_source(component, u.top)}
    body = manifest(unit_name, component)
    body["clock_mhz"] = clock_mhz
    models = u.simulation_models(component.params)
    for model in models:
        files[f"sim_models/{model.name}"] = model.read_text()
    if models:
        body["simulation_models"] = [f"sim_models/{m.name}" for m in models]
    clock = "aclk" if "aclk" in component.signature.members else "clk"
    files[f"{u.top}.sdc"] = sdc(u.top, clock, clock_mhz)
    files[f"{u.top}.xdc"] = xdc(u.top, clock, clock_mhz)
    extra_tops = {}
    if unit_name == "engine":
        axil_top = f"{u.top}_axil"
        registers = AttentionEngineAxiLite(**component.params)
        files[f"{axil_top}.v"] = verilog_source(registers, axil_top)
        files[f"{u.top}_regs.md"] = markdown(axil_top, registers.registers, component.params)
        files[f"{u.top}_regs.h"] = c_header(u.top, registers.registers)
        extra_tops[axil_top] = [f"{axil_top}.v"]
        body["register_map"] = [dataclasses.asdict(r) for r in registers.registers]
    if unit_name == "engine_mm":
        from attn_rtl.gen.flows.driver import driver_header, driver_source

        files[f"{u.top}_regs.md"] = markdown(u.top, component.registers, component.params, memory_mapped=True)
        files[f"{u.top}_regs.h"] = c_header(u.top, component.registers)
        files[f"{u.top}_driver.h"] = driver_header(u.top)
        files[f"{u.top}_driver.c"] = driver_source(u.top)
        body["register_map"] = [dataclasses.asdict(r) for r in component.registers]
        body["kv_buffer"] = {"slots": component.dma.slots, "keys": component.dma.slots * component.params["cols"],
                             "bits": component.dma.kv_buffer_bits}
    files[LINT_WAIVERS_FILE] = emit.LINT_WAIVERS
    files[f"{u.top}.core"] = fusesoc_core(
        u.top, VERSION, u.description, [f"{u.top}.v"], [f"sim_models/{m.name}" for m in models],
        {"sdc": f"{u.top}.sdc", "xdc": f"{u.top}.xdc"}, extra_tops)
    files[f"{u.top}.manifest.json"] = json.dumps(body, indent=2) + "\n"
    paths = {}
    for name, text in files.items():
        text = _stamped(name, text)
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths[name] = str(path)
    return paths
