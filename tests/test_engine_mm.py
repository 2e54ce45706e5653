"""The memory-mapped top through a real AXI4 memory model: bit-exact O, memory safety, bursts, counters.

Each case runs ``tb/test_engine_mm.py`` (cocotbext-axi's ``AxiRam`` with random
pauses on every channel): O is read back from memory and compared element by
element, the rest of memory must keep its seeded pattern, every burst is checked
against the 256-beat and 4 KB rules and against the tensors the registers
describe, and ``BYTES_READ``/``BYTES_WRITTEN`` against the host model.
"""

from __future__ import annotations

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_engine_mm
from attn_rtl.hdl.engine_mm import AttentionEngineMM, mm_params
from attn_rtl.sim.runner import SimulationFailure

SMALL = dict(rows=2, cols=3, max_seq_len=32, max_heads=4, max_head_dim=16)

#: Every layout, odd sizes and addresses (a base just below a 4 KB boundary), several heads, grouped
#: decode and multi-query, one key, and a head too long for the K/V buffer (re-read per query block).
MIXED_RUNS = [
    dict(seq_len=5, head_dim=4),
    dict(seq_len=7, head_dim=5, heads=2, layout="tokens", gap=3),
    dict(seq_len=13, head_dim=16, heads=3, layout="fused", gap=1),
    dict(seq_len=9, query_len=1, head_dim=7, heads=4, kv_heads=2, gap=5),
    dict(seq_len=1, head_dim=1),
    dict(seq_len=32, query_len=7, head_dim=6, heads=2, gap=2),
    dict(seq_len=11, query_len=3, head_dim=9, heads=4, kv_heads=1, layout="tokens", gap=7, base=0xFF9),
]


def _check(report):
    assert report["passed"] and report["elements"] > 0


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_every_layout_and_shape_through_memory(sim):
    _check(simulate_engine_mm(SMALL, MIXED_RUNS, sim=sim, seed=2, pause=0.3))


@pytest.mark.parametrize("bus_width", [32, pytest.param(128, marks=pytest.mark.slow),
                                       pytest.param(512, marks=pytest.mark.slow)])
def test_bus_widths(bus_width):
    runs = [dict(seq_len=10, head_dim=13, heads=2, layout="tokens", gap=1, base=0xFE3),
            dict(seq_len=6, head_dim=16, operands="mixed")]
    _check(simulate_engine_mm(dict(SMALL, bus_width=bus_width), runs, seed=3, pause=0.2))


def test_without_a_buffer_every_block_reads_its_tiles_again():
    """The smallest ring (``kv_buffer_keys = 0``): long heads re-read per block, counted in BYTES_READ."""
    runs = [dict(seq_len=24, head_dim=8), dict(seq_len=4, head_dim=3, operands="max")]
    _check(simulate_engine_mm(dict(SMALL, max_seq_len=64), runs, seed=4, pause=0.1))


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_reset_in_the_middle_of_a_burst_then_clean_runs(sim):
    runs = [dict(seq_len=20, head_dim=16, heads=2), dict(seq_len=6, head_dim=5, layout="tokens", gap=1),
            dict(seq_len=9, query_len=2, head_dim=4, heads=2, kv_heads=1)]
    _check(simulate_engine_mm(SMALL, runs, sim=sim, seed=5, pause=0.2, reset_mid=True))


SPARSE = dict(SMALL, sparse=True, max_globals=2)

#: Every sparse pattern through memory: the DMA gathers the rows of the keys ``kv_index`` names.
SPARSE_RUNS = [
    dict(seq_len=23, head_dim=5, heads=2, pattern={"pattern": "causal"}, layout="tokens", gap=1),
    dict(seq_len=30, query_len=3, head_dim=4, heads=4, kv_heads=2, gap=3,
         pattern={"pattern": "causal-window", "window": 7}),
    dict(seq_len=17, head_dim=6, pattern={"pattern": "window", "window": 5}),
    dict(seq_len=20, head_dim=9, heads=2, layout="fused", pattern={"pattern": "dilated", "window": 3, "dilation": 2,
                                                                  "global_tokens": [0, 11]}),
    dict(seq_len=24, head_dim=3, pattern={"pattern": "grid", "grid": [4, 6], "window2d": [3, 3],
                                          "global_tokens": [5]}),
    dict(seq_len=9, query_len=1, head_dim=7, heads=4, kv_heads=1, pattern={"pattern": "causal"}, base=0xFF7),
    dict(seq_len=11, head_dim=4, heads=2),   # dense on the sparse build
]


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_every_sparse_pattern_gathers_through_memory(sim):
    _check(simulate_engine_mm(SPARSE, SPARSE_RUNS, sim=sim, seed=9, pause=0.25))


SPATTEN = dict(SMALL, importance=True, row_flags=True)

#: SpAtten through memory: importance runs (a head that fits the K/V buffer, and one re-read per block: K's
#: scan pass read apart), pruned layers (token and head lists read from memory; importances, row flags and
#: O's listed rows written), K's MSB plane at 1, 2 and 4 bits, and the progressive flow: a run of K's 4 MSBs,
#: then per head the rows it flagged again with K in full (query and head lists), O checked against the
#: progressive layer.  A K_MSB_BITS of 3 is refused.
SPATTEN_RUNS = [
    dict(seq_len=7, head_dim=5, heads=2, importance=True),
    dict(seq_len=20, head_dim=6, heads=2, importance=True, layout="tokens", gap=1),
    dict(seq_len=12, head_dim=5, heads=3, tokens=[0, 3, 4, 7, 11], head_list=[0, 2], importance=True, gap=3),
    dict(seq_len=26, head_dim=4, heads=2, tokens=[t for t in range(26) if t % 3], head_list=[1], importance=True),
    dict(seq_len=19, head_dim=9, heads=2, tokens=[1, 2, 5, 6, 8, 9, 10, 13, 15, 16, 17, 18], layout="fused",
         base=0xFF5),
    dict(seq_len=6, head_dim=4, override={"K_MSB_BITS": 3}, refused=True),
    dict(seq_len=20, head_dim=5, k_msb_bits=2, heads=2),
    dict(seq_len=6, head_dim=3, k_msb_bits=1, importance=True),
    dict(seq_len=13, head_dim=6, heads=3, k_msb_bits=4, threshold=20000, recompute=True, layout="tokens", gap=1),
]


# 45 s on Icarus: slow as well (SpAtten runs through memory stay in the default suite in the register-file fuzz
# below and in tests/test_soak.py's short soak of the memory-mapped SpAtten build).
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_spatten_layers_through_memory(sim):
    """The first run, a pruned importance run, is cut by a reset while its lists load."""
    cut = dict(seq_len=24, head_dim=8, heads=2, tokens=list(range(0, 24, 2)), head_list=[1], importance=True)
    _check(simulate_engine_mm(SPATTEN, [cut, *SPATTEN_RUNS], sim=sim, seed=11, pause=0.25, reset_mid=True))


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_register_file_under_random_traffic_then_runs_through_memory(sim):
    """300 random AXI4-Lite transactions over the whole map (the DMA's bases, strides, lists and
    K_MSB_BITS included; off the map, unaligned, random strobes) against a shadow; then runs, each with
    STARTs while busy, bit-exact with every byte counted once (tb/test_engine_mm.py)."""
    runs = [dict(seq_len=7, head_dim=5, heads=2, tokens=[0, 3, 6], importance=True), dict(seq_len=1, head_dim=1)]
    report = simulate_engine_mm(SPATTEN, runs, sim=sim, seed=14, pause=0.2, fuzz=300)
    assert report["passed"] and report["elements"] > 400   # the runs' O and the transactions' answers


@pytest.mark.slow
@pytest.mark.parametrize("shape", [dict(cols=1, rows=2, bus_width=32), dict(cols=8, rows=3, bus_width=128)])
def test_spatten_layers_at_other_word_sizes(shape):
    """One-byte words (a list entry in two) and eight-byte words (four entries a row)."""
    _check(simulate_engine_mm(dict(SPATTEN, **shape), SPATTEN_RUNS, seed=12, pause=0.2))


@pytest.mark.slow
def test_lists_with_grouped_heads_are_refused():
    runs = [dict(seq_len=6, head_dim=4, heads=2, kv_heads=1, override={"LISTS": 1}, refused=True),
            dict(seq_len=6, head_dim=4, heads=2, tokens=[1, 4])]
    _check(simulate_engine_mm(dict(SMALL, importance=True), runs, seed=13, pause=0.1))


def test_a_refused_start_moves_nothing_and_the_next_run_is_clean():
    """HEAD_DIM past max_head_dim: CTRL.ERROR, no burst, no irq; then a good run."""
    runs = [dict(seq_len=6, head_dim=5, override={"HEAD_DIM": 17}, refused=True), dict(seq_len=6, head_dim=5)]
    _check(simulate_engine_mm(SMALL, runs, seed=8, pause=0.2))


def test_a_read_outside_the_tensors_is_caught():
    """A K row stride twice too long makes the DMA read past K into the gap after it: the burst check
    must fail the run."""
    runs = [dict(seq_len=8, head_dim=6, gap=256, override={"K_ROW_STRIDE": 12})]
    with pytest.raises(SimulationFailure, match="read bursts: .*touches words outside the tensors"):
        simulate_engine_mm(SMALL, runs, seed=6)


@pytest.mark.slow
def test_8x8_verilator_decode_and_prefill():
    params = dict(rows=8, cols=8, max_seq_len=256, max_heads=8, max_head_dim=64, kv_buffer_keys=128)
    runs = [dict(seq_len=200, head_dim=64, heads=2, layout="tokens"),
            dict(seq_len=256, query_len=1, head_dim=64, heads=8, kv_heads=2, gap=1)]
    _check(simulate_engine_mm(params, runs, sim="verilator", seed=7, pause=0.1))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("params, message", [
    (dict(bus_width=48), "data_width must be 32, 64, 128, 256 or 512 bits, not 48"),
    (dict(kv_buffer_keys=10), r"kv_buffer_keys must be a multiple of cols \(8\), not 10"),
    (dict(addr_width=40), "addr_width must be an integer from 12 to 32, not 40"),
    (dict(id_width=0), "id_width must be an integer from 1 to 16, not 0"),
    (dict(importance=True, sparse=True), r"importance needs a dense engine \(sparse = false\)"),
    (dict(burst=4), "unknown memory-mapped engine parameter 'burst'"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ValueError, match=message):
        AttentionEngineMM(**params)


def test_register_map_has_every_tensor_and_the_counters():
    top = AttentionEngineMM(**SMALL)
    top._MustUse__silence = True   # only its register map is read
    regs = {r.name: r for r in top.registers}
    offsets = [r.offset for r in regs.values()]
    assert len(set(offsets)) == len(offsets)
    for t in "QKVO":
        for field in ("BASE", "ROW_STRIDE", "HEAD_STRIDE"):
            assert regs[f"{t}_{field}"].access == "RW" and regs[f"{t}_{field}"].bits == 32
    assert (regs["BYTES_READ"].offset, regs["BYTES_WRITTEN"].offset) == (0x14, 0x18)
    assert mm_params(**SMALL)["bus_width"] == 64


@pytest.mark.parametrize("kv_buffer_keys", [0, 48])
@pytest.mark.parametrize("run", [dict(seq_len=5, head_dim=4), dict(seq_len=32, query_len=7, head_dim=6, heads=2),
                                 dict(seq_len=9, query_len=1, head_dim=7, heads=4, kv_heads=2),
                                 dict(seq_len=100, head_dim=16, heads=3)])
def test_cost_model_bytes_are_the_rtl_counters(run, kv_buffer_keys):
    """The cost model's off-chip bytes with the K/V buffer equal the host model's, which every system run
    checks the top's BYTES_READ and BYTES_WRITTEN against (tb/test_engine_mm.py)."""
    from attn_rtl.gen.cost.model import offchip_bytes
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.hdl.engine_dma import kv_slots
    from attn_rtl.sim.memory_image import bytes_moved

    heads = run.get("heads", 1)
    kv_heads, q_len = run.get("kv_heads", heads), run.get("query_len", run["seq_len"])
    rows, cols = 2, 3
    workload = Workload("t", run["seq_len"], run["head_dim"], heads, kv_heads=kv_heads, q_len=q_len)
    read, written = offchip_bytes(workload, np.array([rows]), cols=np.array([cols]),
                                  kv_buffer_keys=np.array([kv_buffer_keys]))
    expected = bytes_moved(heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=run["seq_len"],
                           head_dim=run["head_dim"], rows=rows, cols=cols,
                           kv_slots=kv_slots(cols=cols, kv_buffer_keys=kv_buffer_keys, prob_tiles=3))
    assert (read[0], written[0]) == pytest.approx(expected, rel=1e-9)
