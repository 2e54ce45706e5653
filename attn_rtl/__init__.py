"""attn-rtl: a generator of synthesizable, verified RTL for attention accelerators.

Everything installs under this one namespace:

- :mod:`attn_rtl.hdl`: the Amaranth components (``from attn_rtl.hdl import AttentionEngine``);
- :mod:`attn_rtl.sim`: bit-exact numpy golden models and the simulator runners;
- :mod:`attn_rtl.tb`: the cocotb testbenches and the full-rate Verilog harness;
- :mod:`attn_rtl.gen`: the generator, the ``attn-rtl`` command line, flows, benchmarks, cost model;
- :mod:`attn_rtl.numerics` and :mod:`attn_rtl.params`: the number formats of docs/numerics.md and the
  parameter validators, which the hardware and the golden models both import (neither imports the other);
- ``attn_rtl.constraints``: FPGA pin and clock constraints and the Verilator lint waivers (data).

In a checkout the folders ``hdl/``, ``sim/``, ``tb/``, ``gen/`` and ``constraints/`` are mapped onto
these names by ``pyproject.toml``.
"""

__version__ = "0.1.0"
