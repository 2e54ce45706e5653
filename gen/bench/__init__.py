"""Benchmarks: each measures a unit in RTL (cycles, area, Fmax) and writes its table into docs/."""
