"""``attn-rtl golden``: the bit-exact golden attention on float q, k, v from a file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .common import CliError
from .layer_flags import (
    cascade_flags,
    cascade_inputs,
    cascade_plan,
    cascade_report,
    cascade_requested,
    check_decoder_flags,
    decoder_pattern,
    decoder_requested,
    pattern_flags,
    pattern_of,
)


def cmd_golden(args) -> int:
    from attn_rtl.sim.golden import Numerics, attention
    from attn_rtl.sim.golden_io import error_figures, load_qkv
    from attn_rtl.sim.sparse import allowed_mask

    if decoder_requested(args):
        return _golden_decoder(args)
    try:
        q, k, v = load_qkv(args.inputs)
    except ValueError as e:
        if "must have the same" not in str(e):
            raise
        raise CliError(f"{e} (decoder inputs, q of (H, q_len, d) and k, v of (H_kv, kv_len, d), take "
                       "--pattern causal or causal-window, or a decoder shape flag: --kv-heads, --q-len, --kv-len)") \
            from None
    pattern = pattern_of(args, q.shape[-2])
    mask = None if pattern.is_dense else allowed_mask(pattern, q.shape[-2])
    scale = _scale_and_tiles(args, q.shape[-1])
    plan = cascade_plan(args, q.shape[0] if q.ndim == 3 else 1, q.shape[-2], Numerics())
    if plan is not None:
        return _golden_cascade(args, plan, pattern, q, k, v, scale)
    result = attention(q, k, v, scale=scale, nm=Numerics(), key_tile=args.key_tile, mask=mask)
    if args.query_block is not None:
        # The sparse engine's order: each block's keys gathered into tiles (docs/sparse.md).
        import dataclasses

        from attn_rtl.sim.engine_stream import engine_output
        from attn_rtl.sim.fixed import dequantize
        from attn_rtl.sim.sparse import scheduled_tiles

        schedule = scheduled_tiles(pattern, q.shape[-2], args.query_block, args.key_tile)
        o_int = engine_output(result.q_int, result.k_int, result.v_int, result.multiplier, result.shift, Numerics(),
                              args.key_tile, mask, schedule=schedule, rows=args.query_block)
        o_int = o_int.reshape(result.o_int.shape)
        result = dataclasses.replace(result, o_int=o_int, o=dequantize(o_int, result.scales["o"]))
    out = Path(args.output)
    _save(out, result)
    if args.json:
        pairs = q.shape[-2] ** 2 if mask is None else int(mask.sum())
        figures = {**pattern.to_dict(), "allowed_pairs": pairs, **error_figures(result, q, k, v, scale, mask)}
        print(json.dumps(figures, indent=1))
    else:
        print(f"wrote {out}: o and o_int of shape {result.o.shape}")
    return 0


def _scale_and_tiles(args, head_dim: int) -> float:
    """The score scale of the flags (default ``1/sqrt(d)``), with --key-tile and --query-block checked."""
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
        raise CliError(f"--scale must be a positive finite number, not {args.scale!r}")
    if args.key_tile is not None and args.key_tile < 1:
        raise CliError(f"--key-tile must be a positive integer, not {args.key_tile}")
    if args.query_block is not None:
        if args.query_block < 1:
            raise CliError(f"--query-block must be a positive integer, not {args.query_block}")
        if args.key_tile is None:
            raise CliError("--query-block needs --key-tile (the engine's rows and cols)")
    return 1.0 / math.sqrt(head_dim) if args.scale is None else args.scale


def _golden_decoder(args) -> int:
    """``golden`` on decoder inputs: q of (H, q_len, d), k and v of (H_kv, kv_len, d), dense or causal."""
    import dataclasses

    from attn_rtl.sim.decoder import decoder_attention, decoder_attention_float, stack_queries, unstack_queries
    from attn_rtl.sim.engine_stream import engine_output
    from attn_rtl.sim.fixed import dequantize
    from attn_rtl.sim.golden import Numerics
    from attn_rtl.sim.golden_io import error_figures, load_qkv
    from attn_rtl.sim.sparse import allowed_mask, scheduled_tiles

    if cascade_requested(args):
        raise CliError("pruning and progressive flags take encoder inputs (q, k, v of one shape), not decoder ones")
    q, k, v = load_qkv(args.inputs, decoder=True)
    heads, kv_heads, q_len, kv_len = check_decoder_flags(args, q, k)
    pattern = decoder_pattern(args, kv_len)
    scale = _scale_and_tiles(args, q.shape[-1])
    window = pattern.window if pattern.kind == "causal-window" else None
    result = decoder_attention(q, k, v, window=window, causal=pattern.is_causal, scale=scale, nm=Numerics(),
                               key_tile=args.key_tile)
    group = heads // kv_heads
    shape = dict(query_len=q_len, group=group)
    if args.query_block is not None:
        # The engine's order: each K/V head's stacked queries in blocks, their keys in tiles (docs/engine.md).
        schedule = scheduled_tiles(pattern, kv_len, args.query_block, args.key_tile, **shape)
        mask = None if pattern.is_dense else allowed_mask(pattern, kv_len, **shape)
        stacked = engine_output(stack_queries(result.q_int, kv_heads), result.k_int[::group], result.v_int[::group],
                                result.multiplier, result.shift, Numerics(), args.key_tile, mask, schedule=schedule,
                                rows=args.query_block)
        o_int = unstack_queries(stacked, heads)
        result = dataclasses.replace(result, o_int=o_int, o=dequantize(o_int, result.scales["o"]))
    _save(args.output, result)
    if args.json:
        def reference(q_, k_, v_):
            return decoder_attention_float(q_, k_, v_, window=window, scale=scale, causal=pattern.is_causal)

        pairs = int(allowed_mask(pattern, kv_len, query_len=q_len).sum())   # per query head, as for encoders
        figures = {**pattern.to_dict(), "heads": heads, "kv_heads": kv_heads, "q_len": q_len, "kv_len": kv_len,
                   "allowed_pairs": pairs, **error_figures(result, q, k, v, scale, reference=reference)}
        print(json.dumps(figures, indent=1))
    else:
        print(f"wrote {args.output}: o and o_int of shape {result.o.shape}")
    return 0


def _save(path, result) -> None:
    out = Path(path)
    try:
        np.savez(out, o=result.o, o_int=result.o_int, q_int=result.q_int, k_int=result.k_int, v_int=result.v_int,
                 scale_q=result.scales["q"], scale_k=result.scales["k"], scale_v=result.scales["v"],
                 scale_o=result.scales["o"], multiplier=result.multiplier, shift=result.shift)
    except OSError as e:
        raise CliError(f"cannot write output {out}: {e.strerror or e}") from None


def _golden_cascade(args, plan: dict, pattern, q, k, v, scale: float) -> int:
    """``golden`` with pruning or progressive flags: the golden model of the engine's layer."""
    import dataclasses

    from attn_rtl.sim.fixed import dequantize
    from attn_rtl.sim.golden import Numerics, attention
    from attn_rtl.sim.golden_io import error_figures
    from attn_rtl.sim.progressive import progressive_layer
    from attn_rtl.sim.pruning import pruned_layer

    if not pattern.is_dense:
        raise CliError("pruning and progressive runs take the dense pattern only")
    if args.key_tile is None or args.query_block is None:
        raise CliError("pruning and progressive flags need --key-tile and --query-block (the engine's cols and rows)")
    nm = Numerics()
    heads, seq_len = (q.shape[0] if q.ndim == 3 else 1), q.shape[-2]
    q, k, v = cascade_inputs(plan, q, k, v)
    result = attention(q, k, v, scale=scale, nm=nm, key_tile=args.key_tile)
    ints = (result.q_int, result.k_int, result.v_int)
    rows, cols = args.query_block, args.key_tile
    if plan["msb_bits"] is not None:
        layer = progressive_layer(*ints, result.multiplier, result.shift, nm, rows, cols, msb_bits=plan["msb_bits"],
                                  threshold=plan["threshold"])
    else:
        ranked = plan["token_keep"] is not None or plan["head_keep"] is not None
        layer = pruned_layer(*ints, result.multiplier, result.shift, nm, rows, cols, token_keep=plan["token_keep"],
                             head_keep=plan["head_keep"], importance=ranked)
    result = dataclasses.replace(result, o_int=layer.o, o=dequantize(layer.o, result.scales["o"]))
    figures = cascade_report(plan, layer, heads, seq_len)
    arrays = {name: np.asarray(figures[name]) for name in ("tokens", "heads_computed", "kept_tokens", "kept_heads")
              if name in figures}
    if "importance" in figures:
        arrays.update(importance=np.asarray(list(figures["importance"].values())),
                      head_importance=np.asarray(list(figures["head_importance"].values())))
    if plan["msb_bits"] is not None:
        arrays["recomputed"] = layer.flags
    try:
        np.savez(Path(args.output), o=result.o, o_int=result.o_int, **arrays)
    except OSError as e:
        raise CliError(f"cannot write output {args.output}: {e.strerror or e}") from None
    if args.json:
        print(json.dumps({**figures, **error_figures(result, q, k, v, scale)}, indent=1))
    else:
        print(f"wrote {args.output}: o and o_int of shape {result.o.shape}")
    return 0


def add_parser(sub) -> None:
    gold = sub.add_parser("golden", help="run the bit-exact golden attention on float q, k, v",
                          description="Quantize float q, k, v (.npz, shape (L, d) or (H, L, d); decoder attention: "
                                      "q of (H, q_len, d), k and v of (H_kv, kv_len, d)) as docs/numerics.md "
                                      "says and run the integer attention contract.")
    gold.add_argument("--inputs", required=True, metavar="FILE.npz", help="arrays q, k, v")
    gold.add_argument("--output", required=True, metavar="OUT.npz", help="writes o (float), o_int and more")
    gold.add_argument("--scale", type=float, default=None, help="score scale (default 1/sqrt(d))")
    gold.add_argument("--key-tile", type=int, default=None, help="keys per online-softmax tile (default: all)")
    gold.add_argument("--query-block", type=int, default=None,
                      help="with --key-tile: gather each block of this many queries' keys into tiles, as the "
                           "sparse engine does (its rows and cols); bit-exact with it")
    gold.add_argument("--json", action="store_true", help="print error figures against float attention")
    pattern_flags(gold)
    cascade_flags(gold)
    gold.set_defaults(func=cmd_golden)
