"""The Amaranth components of attn-rtl, one block per module.

Compose them in your own design::

    from attn_rtl.hdl import AttentionEngine, SystolicArray, SoftmaxUnit, TopK

Each is a ``wiring.Component`` whose signature lists its ports; its constructor takes keyword-only
parameters validated up front (``*_params`` functions validate a whole parameter table, ``*_DEFAULTS``
are the defaults). docs/api.md shows an engine inside a user's ``Elaboratable``, simulated.
"""

from .axi_burst import BurstSplitter
from .byte_gearbox import ByteGearbox
from .credit_fifo import CreditFIFO
from .diagonal_scheduler import DiagonalScheduler
from .engine import ENGINE_DEFAULTS, AttentionEngine, engine_params
from .engine_axil import AttentionEngineAxiLite
from .engine_dma import EngineDMA
from .engine_mm import MEMORY_DEFAULTS, AttentionEngineMM, mm_params
from .engine_top import AttentionEngineAxi
from .exp2 import Exp2Mantissa
from .global_row import GlobalRow
from .head_importance import HeadImportance
from .importance import TokenImportance
from .merge_level import MergeLevel
from .multiplier import Multiplier
from .output_accumulator import OutputAccumulator
from .pe import ProcessingElement
from .pin_wrapper import PinWrapper
from .reciprocal import Reciprocal
from .register_slice import RegisterSlice
from .row_flags import RowFlags
from .row_reader import RowReader
from .row_writer import RowWriter
from .serial_softmax import SerialSoftmax
from .softmax import SOFTMAX_DEFAULTS, SoftmaxUnit, softmax_params
from .sparse_scheduler import SCHEDULER_DEFAULTS, SparseScheduler, scheduler_params
from .systolic_array import ARRAY_DEFAULTS, SystolicArray, array_params
from .topk import TOPK_DEFAULTS, TopK, topk_params

__all__ = [
    "AttentionEngine", "AttentionEngineAxi", "AttentionEngineAxiLite", "SystolicArray", "ProcessingElement",
    "Multiplier", "CreditFIFO", "RegisterSlice", "SoftmaxUnit", "Exp2Mantissa", "Reciprocal",
    "OutputAccumulator", "SparseScheduler", "TopK", "MergeLevel", "TokenImportance", "HeadImportance",
    "RowFlags", "PinWrapper", "AttentionEngineMM", "EngineDMA", "RowReader", "RowWriter", "BurstSplitter",
    "ByteGearbox", "DiagonalScheduler", "GlobalRow", "SerialSoftmax",
    "engine_params", "mm_params", "MEMORY_DEFAULTS", "array_params", "softmax_params", "scheduler_params", "topk_params",
    "ENGINE_DEFAULTS", "ARRAY_DEFAULTS", "SOFTMAX_DEFAULTS", "SCHEDULER_DEFAULTS", "TOPK_DEFAULTS",
]
