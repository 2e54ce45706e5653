"""The analytical cost model (cycles, memory, bytes, energy, area) and the design-space explorer."""
