"""FPGA parts the generator fits designs to: family (a attn_rtl.gen.flows.synth target) and resources.

Resources from the vendors' data sheets: LUTs (LUT4 on ECP5 and iCE40, LUT6 on 7-series), flip-flops,
DSP blocks (MULT18X18D, SB_MAC16, DSP48E1) and block RAMs (DP16KD, SB_RAM40_4K, RAMB18E1 halves).
"""

from __future__ import annotations

__all__ = ["PARTS"]

PARTS = {
    "ecp5-85f": {"name": "LFE5U-85F", "family": "ecp5", "lut": 83_640, "ff": 83_640, "dsp": 156, "bram": 208},
    "ice40-up5k": {"name": "iCE40 UP5K", "family": "ice40", "lut": 5_280, "ff": 5_280, "dsp": 8, "bram": 30},
    "xc7a35t": {"name": "XC7A35T", "family": "xilinx7", "lut": 20_800, "ff": 41_600, "dsp": 90, "bram": 100},
    "xc7a100t": {"name": "XC7A100T", "family": "xilinx7", "lut": 63_400, "ff": 126_800, "dsp": 240, "bram": 270},
}
