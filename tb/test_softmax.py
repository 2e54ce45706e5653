"""cocotb testbench of :class:`attn_rtl.hdl.softmax.SoftmaxUnit` (and of the one-row
:class:`attn_rtl.hdl.serial_softmax.SerialSoftmax`, the same ports with one slot) against
``attn_rtl.sim.softmax_stream``, beat for beat.

The stimulus is a list of query blocks (``cfg["groups"]``), each turned into
the beats an engine would send: score rows cut into key tiles of ``lanes``
(the last one padded and masked), visited in a tile order, interleaved over
the block's rows or row after row.  Every output field of every beat is
compared with the golden model.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.sim.fixed import clog2
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.softmax_stream import beats_from_logits, softmax_stream

from .harness import begin
from .packing import Fields, pack
from .streams import StreamBench, StreamSink, StreamSource


def score_rows(rng, kind: str, shape, width: int) -> np.ndarray:
    """Scores of ``width`` bits: ``random`` (a spread of a few octaves of logits at the default
    scale), ``equal`` rows, one ``dominant`` score per row, ``extreme`` (each at a range end),
    ``ladder`` (every distance below the maximum once)."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if kind == "random":
        return rng.integers(lo, hi, size=shape, endpoint=True)
    if kind == "equal":
        return np.repeat(rng.integers(lo, hi, size=(shape[0], 1), endpoint=True), shape[1], axis=1)
    if kind == "dominant":
        s = rng.integers(lo, 0, size=shape)
        s[np.arange(shape[0]), rng.integers(0, shape[1], size=shape[0])] = hi
        return s
    if kind == "extreme":
        return np.where(rng.random(shape) < 0.5, lo, hi)
    if kind == "ladder":
        # Row r holds hi - r, hi - r - rows, ...: with the identity scale every distance below
        # the row's maximum from 0 up to keys * rows appears once.
        return hi - (np.arange(shape[1])[None, :] * shape[0] + np.arange(shape[0])[:, None])
    raise ValueError(f"unknown score kind {kind!r}")


def mask_rows(rng, kind: str, shape) -> np.ndarray:
    """``none``, ``random`` (30% masked), ``rows`` (some rows fully masked), ``tiles`` (random runs)."""
    if kind == "none":
        return np.ones(shape, bool)
    if kind == "random":
        return rng.random(shape) >= 0.3
    if kind == "rows":
        keep = rng.random(shape) >= 0.2
        keep[rng.random(shape[0]) < 0.4] = False
        return keep
    if kind == "tiles":
        start = rng.integers(0, shape[1], size=(shape[0], 1))
        cols = np.arange(shape[1])[None, :]
        return (cols < start) | (cols >= start + shape[1] // 2)
    raise ValueError(f"unknown mask kind {kind!r}")


def build_beats(cfg, rng):
    """All beats of all groups: (score, mask, slot, first, last) arrays, stream order."""
    lanes, width = cfg["lanes"], cfg["score_width"]
    parts = []
    for g in cfg["groups"]:
        rows, keys = g["rows"], g["keys"]
        scores = score_rows(rng, g.get("scores", "random"), (rows, keys), width)
        allowed = mask_rows(rng, g.get("mask", "none"), (rows, keys))
        n_tiles = -(-keys // lanes)
        order = {"ascending": None, "descending": list(range(n_tiles))[::-1],
                 "random": list(rng.permutation(n_tiles))}[g.get("order", "ascending")]
        row, tile, first, last = beats_from_logits(rows, keys, lanes, order, interleave=g.get("interleave", True))
        padded = np.zeros((rows, n_tiles * lanes), np.int64)
        padded_mask = np.zeros((rows, n_tiles * lanes), bool)
        padded[:, :keys], padded_mask[:, :keys] = scores, allowed
        cols = tile[:, None] * lanes + np.arange(lanes)[None, :]
        parts.append((padded[row[:, None], cols], padded_mask[row[:, None], cols], row, first, last))
    return [np.concatenate(x) for x in zip(*parts)]


@cocotb.test()
async def softmax_beats(dut):
    cfg, report, rng = begin(dut, "groups")
    nm = Numerics.from_dict(cfg["numerics"])
    lanes, P = cfg["lanes"], nm.prob_frac_bits
    sum_width = nm.row_sum_width(cfg["max_seq_len"])
    slot_bits = clog2(cfg["slots"])
    beat_fields = Fields([("score", lanes * cfg["score_width"]), ("mask", lanes), ("slot", slot_bits),
                          ("first", 1), ("last", 1)])
    prob_fields = Fields([("p", lanes * (P + 1)), ("slot", slot_bits), ("scale_mant", P + 1),
                          ("scale_exp", 6), ("first", 1), ("last", 1)])
    sum_fields = Fields([("slot", slot_bits), ("row_sum", sum_width), ("recip", nm.recip_bits + 1),
                         ("recip_exp", max(1, clog2(sum_width)))])

    Clock(dut.clk, 10, unit="ns").start()
    dut.scale_mult.value = cfg["scale_mult"]
    dut.scale_shift.value = cfg["scale_shift"]
    source = StreamSource(dut, "scores", rng, idle=cfg["idle"])
    probs = StreamSink(dut, "probs", rng, stall=cfg["stall"])
    sums = StreamSink(dut, "sums", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [source, probs, sums])
    await bench.reset()

    def words(score, mask, slot, first, last):
        return [beat_fields.pack(score=pack(score[b], cfg["score_width"]), mask=pack(mask[b], 1), slot=slot[b],
                                 first=first[b], last=last[b]) for b in range(len(slot))]

    slack = 1.0 / (1.0 - max(cfg["idle"], cfg["stall"]))
    if cfg["reset_mid"]:
        # Half a stream, then reset: nothing of it may come out; the stream after it starts clean.
        score, mask, slot, first, last = build_beats(cfg, rng)
        half = max(1, len(slot) // 2)
        source.send(words(score, mask, slot, first, last)[:half])
        await bench.run(lambda: source.done, int(40 * slack * half * max(1, cfg.get("recurrence", 1))) + 200)
        await bench.step(int(rng.integers(0, 20)))
        await bench.reset(3)
        for sink in (probs, sums):
            sink.beats.clear()
            sink.first_accept_cycle = None
        source.first_accept_cycle = None

    score, mask, slot, first, last = build_beats(cfg, rng)
    source.send(words(score, mask, slot, first, last))
    expected = softmax_stream(score, mask, slot, first, last, mult=cfg["scale_mult"], shift=cfg["scale_shift"],
                              nm=nm, max_seq_len=cfg["max_seq_len"])
    n_sums = int(last.sum())
    budget = int(40 * slack * len(slot) * max(1, cfg.get("recurrence", 1))) + 400
    await bench.run(lambda: len(probs.beats) >= len(slot) and len(sums.beats) >= n_sums, budget)
    await bench.step(30)   # nothing more may come out
    report.check(len(probs.beats) == len(slot), f"{len(probs.beats)} probs beats, expected {len(slot)}")
    report.check(len(sums.beats) == n_sums, f"{len(sums.beats)} sums beats, expected {n_sums}")

    width = P + 1
    for b, word in enumerate(probs.beats[:len(slot)]):
        got = prob_fields.unpack(word)
        p = np.array([(got["p"] >> (j * width)) & ((1 << width) - 1) for j in range(lanes)])
        report.compare(f"beat {b} p", p, expected.probs[b])
        report.compare(f"beat {b} fields",
                       np.array([got["slot"], got["first"], got["last"], got["scale_mant"], got["scale_exp"]]),
                       np.array([slot[b], first[b], last[b], expected.scale_mant[b], expected.scale_exp[b]]))
    for e, word in enumerate(sums.beats[:n_sums]):
        got = sum_fields.unpack(word)
        report.compare(f"row end {e} (slot, sum, recip, exp)",
                       np.array([got["slot"], got["row_sum"], got["recip"], got["recip_exp"]]),
                       np.array([expected.sum_slot[e], expected.row_sum[e], expected.recip[e],
                                 expected.recip_exp[e]]))

    report.cycles = source.last_accept_cycle - source.first_accept_cycle + 1
    # First beat in to its outputs out: the latencies, when nothing stalled.
    report.extra.update(probs_delay=probs.first_accept_cycle - source.first_accept_cycle,
                        sums_delay=sums.first_accept_cycle - source.first_accept_cycle if sums.beats else None)
    report.extra.update(beats=int(len(slot)), row_ends=n_sums, rescales=int((expected.scale_exp > 0).sum() +
                        (expected.scale_mant < (1 << P)).sum()),
                        masked_rows=int((expected.row_sum == 0).sum()))
    report.finish()
