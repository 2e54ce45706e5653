"""Flows: Verilog emission, synthesis, place and route, board builds, generated collateral, sweeps."""
