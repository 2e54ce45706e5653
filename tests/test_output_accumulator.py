"""The output accumulator alone in RTL simulation (cocotb, Icarus and Verilator) against its bit-exact model.

Inside the engine its beats come in one order (tile, chunk, row) and its read-after-write
hazards only when a block has fewer words than the pipeline is deep; here every order and shape
reaches them, one word back to back included.
"""

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_accumulator
from attn_rtl.hdl.output_accumulator import OutputAccumulator, accumulator_params
from attn_rtl.sim.accumulator_stream import AccumulatorBeats, accumulator_stream
from attn_rtl.sim.golden import Numerics, normalize, online_softmax_attention, online_step, rescale_factor

NM = Numerics()


def _blocks(rows, chunks):
    """Blocks of every kind: the engine's order and row-major, one tile and several, rows and lanes
    short of the block, extreme partials."""
    return [
        dict(tiles=3, chunks=chunks),
        dict(tiles=1, chunks=max(1, chunks - 1), rows_valid=max(1, rows - 1), order="rows"),
        dict(tiles=4, chunks=chunks, lanes_valid=1, order="rows", partials="extreme"),
        dict(tiles=2, chunks=1, rows_valid=1),
        dict(tiles=5, chunks=chunks, partials="extreme"),
    ]


SHAPES = [  # (lanes, rows, chunks): one word (every beat a hazard), odd counts, the default engine's
    (1, 1, 1), (3, 5, 2), (8, 8, 16), (2, 1, 3),
]


def _params(lanes, rows, chunks):
    return dict(lanes=lanes, rows=rows, chunks=chunks, partial_width=20, max_seq_len=200)


def _cases():
    cases = [pytest.param("icarus", *shape, id=f"icarus-{'x'.join(map(str, shape))}") for shape in SHAPES]
    # A Verilator build takes half a minute: one shape there (the reset test shares its build).
    return cases + [pytest.param("verilator", 3, 5, 2, id="verilator-3x5x2")]


@pytest.mark.parametrize("sim, lanes, rows, chunks", _cases())
def test_every_order_bit_exact_with_idle_and_backpressure(sim, lanes, rows, chunks):
    report = simulate_accumulator(_params(lanes, rows, chunks), sim=sim, seed=lanes * 100 + rows * 10 + chunks,
                                  blocks=_blocks(rows, chunks), idle=0.3, stall=0.3)
    assert report["passed"] and report["outputs"] > 0


@pytest.mark.parametrize("idle", [0.6, 0.85])
def test_sparse_beats_of_one_word_are_bit_exact(idle):
    """Beats arriving one at a time: a beat comes in as its predecessor enters the pipeline, so its
    hazard is found by its comparison with the head, not with the waiting entries."""
    report = simulate_accumulator(dict(lanes=2, rows=1, chunks=1, partial_width=16, max_seq_len=64),
                                  seed=int(idle * 100), blocks=[dict(tiles=3, chunks=1)] * 10, idle=idle, stall=0.2)
    assert report["passed"]


def test_last_beats_wait_for_late_reciprocals():
    """Reciprocals arriving seldom: each row's last beats wait for theirs (one-tile blocks: every
    beat is a last beat), and a block's reciprocals never serve another's rows."""
    report = simulate_accumulator(dict(lanes=3, rows=3, chunks=2, partial_width=16, max_seq_len=64), seed=11,
                                  blocks=[dict(tiles=1, chunks=2), dict(tiles=2, chunks=1)] * 4, idle=0.1,
                                  recip_idle=0.9, stall=0.1)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_reset_in_the_middle_then_a_clean_stream(sim):
    report = simulate_accumulator(_params(3, 5, 2), sim=sim, seed=9, reset_mid=True, blocks=_blocks(5, 2),
                                  idle=0.2, stall=0.3)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_ecp5_primitives_are_bit_exact(sim):
    """The engine's build: rescale and normalize multipliers in MULT18X18D pieces, copies kept apart,
    the accumulators in DP16KD read through their output registers."""
    params = dict(lanes=3, rows=4, chunks=3, partial_width=24, max_seq_len=1024, multiplier="ecp5", memory="ecp5")
    report = simulate_accumulator(params, sim=sim, seed=5, blocks=_blocks(4, 3), idle=0.3, stall=0.3)
    assert report["passed"]


def test_full_rate_when_a_word_recurs_no_sooner_than_the_recurrence():
    """No stalls and rows · chunks at least the recurrence: a beat every cycle, the first output
    ``latency`` cycles after the first last beat."""
    unit = OutputAccumulator(lanes=4, rows=4, chunks=4, partial_width=20, max_seq_len=256)
    unit._MustUse__silence = True
    assert 16 >= unit.recurrence
    # The first block's reciprocals arrive with its first beat: it is not the one-tile block.
    blocks = [dict(tiles=3, chunks=4), dict(tiles=1, chunks=4), dict(tiles=2, chunks=4)]
    report = simulate_accumulator(dict(lanes=4, rows=4, chunks=4, partial_width=20, max_seq_len=256),
                                  seed=6, blocks=blocks)
    assert report["passed"]
    assert report["cycles"] == report["beats"] == 4 * 4 * 6
    assert report["first_out_delay"] == 2 * 16 + unit.latency   # two tiles of 16 beats before the first last beat


def test_one_word_back_to_back_waits_for_its_write():
    """rows = chunks = 1: every beat updates the word its predecessor is still writing.  The two
    input slices take the first five beats at once (their four entries and the one entering); each
    later beat waits ``recurrence`` cycles for its predecessor's write, across blocks too."""
    unit = OutputAccumulator(lanes=2, rows=1, chunks=1, partial_width=16, max_seq_len=64)
    unit._MustUse__silence = True
    report = simulate_accumulator(dict(lanes=2, rows=1, chunks=1, partial_width=16, max_seq_len=64), seed=7,
                                  blocks=[dict(tiles=6, chunks=1), dict(tiles=4, chunks=1)])
    assert report["passed"]
    assert report["cycles"] == 5 + (report["beats"] - 5) * unit.recurrence


@pytest.mark.parametrize("params, message", [
    (dict(lanes=0), "lanes must be a positive integer, not 0"),
    (dict(rows=-1), "rows must be a positive integer, not -1"),
    (dict(chunks=1.5), "chunks must be a positive integer, not 1.5"),
    (dict(partial_width=65), "partial_width must be at most 64, not 65"),
    (dict(multiplier="dsp48"), "multiplier must be one of generic, ecp5, not 'dsp48'"),
    (dict(memory="bram"), "memory must be one of inferred, ecp5, not 'bram'"),
    (dict(memory="ecp5", rows=64, chunks=32), "with memory 'ecp5' rows \\* chunks must be at most 1024, not 2048"),
    (dict(numerics=7), "numerics must be a table of number formats, not 7"),
    (dict(lane=3), "unknown accumulator parameter 'lane'"),
])
def test_bad_parameters_are_rejected_with_the_value(params, message):
    with pytest.raises(ValueError, match=message):
        accumulator_params(**params)


# --- the model against the contract ----------------------------------------------------------

def test_model_rebuilds_the_contracts_online_attention():
    """Beats made from the contract's online softmax (each tile's rescale factor and p·V, the rows'
    reciprocals) give exactly online_softmax_attention, in the engine's order and row-major."""
    rng = np.random.default_rng(3)
    rows, keys, tile, d = 3, 20, 4, 5
    t = rng.integers(-(1 << 14), 1 << 14, size=(rows, keys))
    v = rng.integers(-128, 128, size=(keys, d))
    expected, state = online_softmax_attention(t, v, NM, key_tile=tile)
    beats = _contract_beats(t, v, tile)
    n_tiles = keys // tile
    for order in (np.arange(n_tiles * rows),                                              # tile, row
                  np.arange(n_tiles * rows).reshape(n_tiles, rows).T.ravel()):            # row, tile
        out = accumulator_stream(beats.take(order), state.reciprocal, state.exponent, rows=rows, nm=NM, acc_width=40)
        assert np.array_equal(out.data, expected)
        assert out.last.tolist() == [0, 0, 1] and out.run_end.tolist() == [0, 0, 1]


def _contract_beats(t, v, tile) -> AccumulatorBeats:
    """One beat per (key tile, row), tile-major, from the contract's online step."""
    rows, keys = t.shape
    row_max, seen = np.full(rows, -(1 << 62), np.int64), np.zeros(rows, bool)
    n_tiles = keys // tile
    tiles = []
    for j in range(n_tiles):
        cols = slice(j * tile, (j + 1) * tile)
        row_max, seen, delta, p = online_step(row_max, seen, t[:, cols], np.ones((rows, tile), bool), NM)
        mant, exp = rescale_factor(delta, NM)
        ends = (np.arange(rows) == rows - 1).astype(int)
        tiles.append(AccumulatorBeats(
            data=p @ v[cols], row=np.arange(rows), chunk=np.zeros(rows, int), first=np.full(rows, int(j == 0)),
            last=np.full(rows, int(j == n_tiles - 1)), chunk_last=np.ones(rows, int), scale_mant=mant,
            scale_exp=exp, lanes_valid=np.full(rows, v.shape[1]), emit=np.ones(rows, int), block_end=ends,
            run_end=ends))
    return AccumulatorBeats.concatenate(tiles)


def test_model_rejects_an_accumulator_out_of_range_and_a_missing_reciprocal():
    one = dict(row=[0], chunk=[0], first=[1], last=[1], chunk_last=[1], scale_mant=[1], scale_exp=[0],
               lanes_valid=[1], emit=[1], block_end=[1], run_end=[1])
    with pytest.raises(ValueError, match="left the 8-bit range"):
        accumulator_stream(AccumulatorBeats(data=np.array([[200]]), **one), [1], [0], rows=1, nm=NM, acc_width=8)
    with pytest.raises(ValueError, match="no reciprocal"):
        accumulator_stream(AccumulatorBeats(data=np.array([[1]]), **one), [], [], rows=1, nm=NM, acc_width=8)


def test_model_normalizes_as_the_contract():
    acc = np.array([[1000, -1000, 3, 1 << 20]])
    beats = AccumulatorBeats(data=acc, row=[0], chunk=[0], first=[1], last=[1], chunk_last=[1], scale_mant=[5],
                             scale_exp=[9], lanes_valid=[3], emit=[1], block_end=[1], run_end=[0])
    out = accumulator_stream(beats, [40000], [2], rows=1, nm=NM, acc_width=30)
    expected = normalize(acc, np.array([40000]), np.array([2]), NM, NM.data_width)
    expected[0, 3] = 0   # past lanes_valid
    assert np.array_equal(out.data, expected) and out.run_end.tolist() == [0]
