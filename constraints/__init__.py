"""FPGA pin and clock constraints and the Verilator lint waivers, shipped as data of ``attn_rtl.constraints``."""

from pathlib import Path

__all__ = ["FOLDER"]

#: The folder of the constraint files, in a checkout or an installed package alike.
FOLDER = Path(__file__).resolve().parent
