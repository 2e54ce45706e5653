"""Register-to-register paths of an ECP5 netlist estimated after synthesis alone, in a second.

Place and route of the 8×8 engine takes 12-15 minutes a seed and names one critical path; the
netlist Yosys writes already says how deep every path's logic is and how wide each of its nets.
:func:`deep_paths` walks every cone of logic between registers (flip-flops, block RAM and multiplier
registers, the LUT RAMs' write side) with a delay model of the LFE5U-85F-6 (the cell delays nextpnr
reports: LUT4 0.24 ns, PFUMX/L6MUX21 0.26 ns, a carry cell 0.35 ns and 0.06 ns per cell along the
chain) and an estimate of each net's routing from its fan-out, and lists the endpoints past a budget,
by unit.  The routing estimate is a ranking, not a figure: placement decides the real one (a
net between two block RAMs 45 rows apart takes 7 ns whatever its fan-out), so an endpoint's estimate
can be off by a factor of two either way; a fix is confirmed by place and route.
"""

from __future__ import annotations

import math

__all__ = ["netlist_index", "deep_paths", "DELAY_MODEL"]

#: Delays in ns (LFE5U-85F-6 as nextpnr-ecp5 times it).  ``route_base`` + ``route_per_doubling`` ·
#: log2(fan-out) is the routing of a net to each of its sinks; calibrated on the 4×4 proxy engine
#: (its nextpnr critical path of 10.2 ns, seed 1, is estimated at 10.4 ns).
DELAY_MODEL = {
    "clock_to_out": 0.52, "setup": 0.1, "lut": 0.24, "mux": 0.26, "carry_in": 0.35, "carry_step": 0.06,
    "lutram_read": 0.5, "bram_outreg": 1.2, "bram_noreg": 5.8, "mult_registered": 1.0, "mult_comb": 4.0,
    "route_base": 0.55, "route_per_doubling": 0.25,
}

_COMBINATIONAL_INPUTS = {
    "LUT4": ("A", "B", "C", "D"), "PFUMX": ("ALUT", "BLUT", "C0"), "L6MUX21": ("D0", "D1", "SD"),
    "TRELLIS_DPR16X4": ("RAD",), "CCU2C": ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1", "CIN"),
}
#: Inputs that reach their cell over dedicated wires (the slice's own multiplexers, the carry chain).
_DEDICATED = {("PFUMX", "ALUT"), ("PFUMX", "BLUT"), ("L6MUX21", "D0"), ("L6MUX21", "D1"), ("CCU2C", "CIN")}


def netlist_index(netlist: dict, top: str = "pin_wrapper") -> tuple[dict, dict, dict, dict]:
    """``(cells, names, drivers, sinks)`` of a Yosys JSON netlist's ``top``: its cells (``$scopeinfo``
    left out), the shortest name of each net bit, the ``(cell, port)`` driving it and those it reaches."""
    module = netlist["modules"][top]
    cells = {name: cell for name, cell in module["cells"].items() if cell["type"] != "$scopeinfo"}
    names, drivers, sinks = {}, {}, {}
    for name, net in module["netnames"].items():
        for bit in net["bits"]:
            if isinstance(bit, int) and (bit not in names or len(name) < len(names[bit])):
                names[bit] = name
    for cell_name, cell in cells.items():
        for port, bits in cell["connections"].items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if cell["port_directions"].get(port) == "output":
                    drivers[bit] = (cell_name, port)
                else:
                    sinks.setdefault(bit, []).append((cell_name, port))
    return cells, names, drivers, sinks


def _parameter(cell: dict, name: str, default: str) -> str:
    return str(cell["parameters"].get(name, default)).strip()


def _mult_registered(cell: dict) -> bool:
    return _parameter(cell, "REG_OUTPUT_CLK", "NONE") != "NONE"


def _endpoint(cell: dict, port: str, delay: dict) -> float | None:
    """The delay from ``port`` of ``cell`` to the register it ends at (``None``: not a path's end)."""
    kind = cell["type"]
    if (cell["port_directions"].get(port) != "input" or kind in _COMBINATIONAL_INPUTS and kind != "TRELLIS_DPR16X4"
            or port.startswith("CLK") or port == "WCK"):
        return None
    if kind == "TRELLIS_FF":
        return 0.0 if port in ("DI", "CE", "LSR") else None
    if kind == "TRELLIS_DPR16X4":
        return None if port == "RAD" else 0.0
    if kind == "MULT18X18D" and port[:1] in ("A", "B") and port[1:].isdigit():
        if _parameter(cell, f"REG_INPUT{port[0]}_CLK", "NONE") != "NONE":
            return 0.0
        return delay["mult_comb"] if _mult_registered(cell) else None
    return 0.0


def deep_paths(netlist: dict, *, budget_ns: float = 1000 / 150, top: str = "pin_wrapper", count: int = 20,
               model: dict | None = None) -> dict:
    """Estimated register-to-register delays of a synthesized ECP5 netlist (module docstring).

    Returns ``{"endpoints": n, "over_budget": n, "budget_ns": ..., "by_unit": [(unit, endpoints over
    the budget)], "paths": [{"ns", "end", "levels", "nets"}]}``: the worst ``count`` paths, one per
    start signal, each with the nets along it from its start.  A unit is the first two levels of
    the hierarchy under the wrapper (``inner.accumulator``)."""
    delay = {**DELAY_MODEL, **(model or {})}
    cells, names, drivers, sinks = netlist_index(netlist, top)

    def route(bit):
        return delay["route_base"] + delay["route_per_doubling"] * math.log2(max(len(sinks.get(bit, ())), 1))

    arrival = {}   # net bit -> (ns at its driver's output, the input net on the slowest path, levels)

    def start(cell):
        kind = cell["type"]
        if kind == "TRELLIS_FF":
            return delay["clock_to_out"]
        if kind == "DP16KD":
            return delay["bram_outreg" if _parameter(cell, "REGMODE_B", "NOREG") == "OUTREG" else "bram_noreg"]
        if kind == "MULT18X18D" and _mult_registered(cell):
            return delay["mult_registered"]
        if kind == "MULT18X18D" and _parameter(cell, "REG_INPUTA_CLK", "NONE") != "NONE":
            return delay["clock_to_out"] + delay["mult_comb"]
        return None

    def visit(bit):
        # Iterative depth-first search: a carry chain of a thousand cells would overflow Python's stack.
        stack = [bit]
        while stack:
            net = stack[-1]
            if net in arrival:
                stack.pop()
                continue
            if net not in drivers:
                arrival[net] = (0.0, None, 0)
                stack.pop()
                continue
            cell_name, out_port = drivers[net]
            cell = cells[cell_name]
            kind = cell["type"]
            launched = start(cell)
            if launched is not None:
                arrival[net] = (launched, None, 0)
                stack.pop()
                continue
            if kind == "MULT18X18D":
                inputs = [(port, bits) for port, bits in cell["connections"].items()
                          if port[:1] in ("A", "B") and port[1:].isdigit()]
                cell_delay = delay["mult_comb"]
            elif kind in _COMBINATIONAL_INPUTS:
                inputs = [(port, cell["connections"].get(port, [])) for port in _COMBINATIONAL_INPUTS[kind]]
                cell_delay = {"LUT4": delay["lut"], "PFUMX": delay["mux"], "L6MUX21": delay["mux"],
                              "TRELLIS_DPR16X4": delay["lutram_read"], "CCU2C": delay["carry_in"]}[kind]
            else:
                arrival[net] = (0.0, None, 0)
                stack.pop()
                continue
            pending = [b for _, bits in inputs for b in bits if isinstance(b, int) and b not in arrival]
            if pending:
                stack.extend(pending)
                continue
            best = (0.0, None, 0)
            for port, bits in inputs:
                for b in bits:
                    if not isinstance(b, int):
                        continue
                    through = delay["carry_step"] if port == "CIN" and out_port == "COUT" else cell_delay
                    wire = 0.0 if (kind, port) in _DEDICATED else route(b)
                    at = arrival[b][0] + wire + through
                    if at > best[0]:
                        best = (at, b, arrival[b][2] + (kind != "CCU2C" or port != "CIN"))
            arrival[net] = best
            stack.pop()

    ends = []
    for cell_name, cell in cells.items():
        for port, bits in cell["connections"].items():
            extra = _endpoint(cell, port, delay)
            if extra is None:
                continue
            for bit in bits:
                if isinstance(bit, int):
                    visit(bit)
                    ends.append((arrival[bit][0] + route(bit) + extra + delay["setup"], cell_name, port, bit))
    ends.sort(key=lambda end: -end[0])
    over = [end for end in ends if end[0] > budget_ns]
    by_unit = {}
    for _, cell_name, _, _ in over:
        unit = ".".join(cell_name.split(".")[:2]) if cell_name.count(".") >= 2 else cell_name.split(".")[0]
        by_unit[unit] = by_unit.get(unit, 0) + 1

    def nets_to(bit):
        found = []
        while bit is not None:
            found.append(names.get(bit, f"${bit}"))
            bit = arrival[bit][1]
        return found[::-1]

    paths, starts = [], set()
    for ns, cell_name, port, bit in ends:
        if len(paths) == count:
            break
        nets = nets_to(bit)
        if nets[0] in starts:
            continue
        starts.add(nets[0])
        paths.append({"ns": round(ns, 2), "end": f"{cell_name}.{port}", "levels": arrival[bit][2], "nets": nets})
    return {"endpoints": len(ends), "over_budget": len(over), "budget_ns": round(budget_ns, 2),
            "by_unit": sorted(by_unit.items(), key=lambda item: -item[1]), "paths": paths}
