"""Flags that describe an attention layer, shared by ``sim`` and ``golden``: the sparse pattern, the
decoder shape (KV cache, grouped heads), SpAtten's token and head lists, importance runs and progressive
quantization."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .common import CliError


def pattern_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sparse pattern (docs/sparse.md)")
    group.add_argument("--pattern", choices=["dense", "window", "dilated", "grid", "causal", "causal-window"],
                       default="dense", help="which (query, key) pairs take part (default dense)")
    group.add_argument("--window", type=int, default=None, metavar="W",
                       help="window and dilated: query i attends key j when |i-j| <= W/2; causal-window: "
                            "the query at position p attends keys p-W < j <= p")
    group.add_argument("--dilation", type=int, default=None, metavar="D",
                       help="dilated: also D divides i-j, and |i-j| <= D*W/2")
    group.add_argument("--grid", default=None, metavar="HxW", help="grid: tokens on an H x W grid, raster order")
    group.add_argument("--window2d", default=None, metavar="KHxKW",
                       help="grid: |row_i-row_j| <= KH/2 and |col_i-col_j| <= KW/2")
    group.add_argument("--global", dest="global_tokens", default=None, metavar="I,J,...",
                       help="global tokens: attend to every key, and every query attends to them")
    shape = parser.add_argument_group("decoder shape (docs/engine.md, Decoder attention): q of (H, q_len, d), "
                                      "k and v of (H_kv, kv_len, d)")
    shape.add_argument("--kv-heads", type=int, default=None, metavar="H_KV",
                       help="K/V heads (H a multiple; default H): query head h reads K/V head h // (H / H_KV)")
    shape.add_argument("--q-len", type=int, default=None, metavar="N",
                       help="new queries, at positions kv_len-N .. kv_len-1 (default kv_len; 1: a decode step)")
    shape.add_argument("--kv-len", type=int, default=None, metavar="N", help="keys in the KV cache")


def cascade_requested(args) -> bool:
    """A pruning or progressive-quantization flag is given."""
    return any(getattr(args, name) is not None for name in ("token_list", "token_list_file", "head_list",
                                                            "token_keep", "head_keep", "progressive", "threshold"))


def decoder_requested(args) -> bool:
    """The flags ask for decoder attention: a causal pattern or a decoder shape flag."""
    return args.pattern in ("causal", "causal-window") or any(
        value is not None for value in (args.kv_heads, args.q_len, args.kv_len))


def decoder_shape(args, default_len: int) -> tuple[int, int, int, int]:
    """``(heads, kv_heads, q_len, kv_len)`` of the shape flags (no inputs file): ``--kv-len`` or
    ``--seq-len`` (the same when both are given) keys, default ``default_len``."""
    if args.seq_len is not None and args.kv_len is not None and args.seq_len != args.kv_len:
        raise CliError(f"--seq-len {args.seq_len} and --kv-len {args.kv_len} disagree (both name the keys)")
    kv_len = args.kv_len or args.seq_len or default_len
    heads = 1 if args.heads is None else args.heads
    kv_heads = heads if args.kv_heads is None else args.kv_heads
    q_len = kv_len if args.q_len is None else args.q_len
    for flag, value in (("--heads", heads), ("--kv-heads", kv_heads), ("--q-len", q_len), ("--kv-len", kv_len)):
        if value < 1:
            raise CliError(f"{flag} must be a positive integer, not {value}")
    if heads % kv_heads:
        raise CliError(f"--heads {heads} must be a multiple of --kv-heads, not {kv_heads}")
    if q_len > kv_len:
        raise CliError(f"--q-len must be at most --kv-len ({kv_len}), not {q_len}: the cache holds every query's key")
    return heads, kv_heads, q_len, kv_len


def check_decoder_flags(args, q, k) -> tuple[int, int, int, int]:
    """``(heads, kv_heads, q_len, kv_len)`` of arrays ``q (H, q_len, d)``, ``k (H_kv, kv_len, d)``; a flag
    given beside them must agree with their shape."""
    shape = (q.shape[0], k.shape[0], q.shape[1], k.shape[1])
    given = (("--heads", getattr(args, "heads", None), shape[0]), ("--kv-heads", args.kv_heads, shape[1]),
             ("--q-len", args.q_len, shape[2]), ("--kv-len", args.kv_len, shape[3]))
    for flag, value, found in given:
        if value is not None and value != found:
            raise CliError(f"{flag} {value} does not match the inputs (shape gives {found})")
    return shape


def decoder_pattern(args, kv_len: int):
    """The pattern of the flags for a decoder shape: dense, causal or causal-window."""
    pattern = pattern_of(args, kv_len)
    if not (pattern.is_dense or pattern.is_causal):
        raise CliError(f"--pattern {pattern.kind} takes one query per key and no grouped heads: decoder shapes "
                       "(--kv-heads, --q-len, --kv-len) go with dense, causal and causal-window")
    return pattern


def pattern_of(args, seq_len: int):
    """The pattern of the flags, checked against ``seq_len`` (a ``ValueError`` names the bad flag)."""
    from attn_rtl.sim.sparse import parse_pattern

    pattern = parse_pattern(args.pattern, window=args.window, dilation=args.dilation, grid=args.grid,
                            window2d=args.window2d, global_tokens=args.global_tokens)
    pattern.check(seq_len)
    return pattern


def cascade_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SpAtten: cascade pruning and progressive quantization (docs/engine.md)")
    group.add_argument("--token-list", default=None, metavar="I,J,...",
                       help="compute only these tokens (the previous layer's kept tokens)")
    group.add_argument("--token-list-file", default=None, metavar="FILE",
                       help="the token list from a file (indices separated by commas or white space)")
    group.add_argument("--head-list", default=None, metavar="H,...", help="compute only these heads")
    group.add_argument("--token-keep", type=int, default=None, metavar="K",
                       help="importance run: keep the K most important tokens for the next layer")
    group.add_argument("--head-keep", type=int, default=None, metavar="K",
                       help="importance run: keep the K most important heads for the next layer")
    group.add_argument("--progressive", type=int, default=None, metavar="MSB_BITS",
                       help="score with K's MSB_BITS most significant bits first")
    group.add_argument("--threshold", type=float, default=None, metavar="X",
                       help="with --progressive: recompute rows whose largest probability is below X (0 to 2)")


def cascade_plan(args, heads: int, seq_len: int, nm) -> dict | None:
    """The pruning and progressive flags, checked; ``None`` when none is given."""
    from attn_rtl.sim.pruning import check_index_list, parse_index_list

    if args.token_list is not None and args.token_list_file is not None:
        raise CliError("--token-list and --token-list-file are exclusive")
    text = args.token_list
    if args.token_list_file is not None:
        try:
            text = Path(args.token_list_file).read_text()
        except OSError as e:
            raise CliError(f"cannot read --token-list-file {args.token_list_file}: {e.strerror or e}") from None
    flag = "--token-list-file" if args.token_list_file is not None else "--token-list"
    tokens = None if text is None else check_index_list(flag, parse_index_list(flag, text), seq_len, "token")
    head_list = None if args.head_list is None else check_index_list(
        "--head-list", parse_index_list("--head-list", args.head_list), heads, "head")
    if args.threshold is not None and args.progressive is None:
        raise CliError("--threshold needs --progressive MSB_BITS")
    threshold = None
    if args.progressive is not None:
        if args.threshold is None:
            raise CliError("--progressive needs --threshold X")
        if args.token_keep is not None or args.head_keep is not None:
            raise CliError("--progressive cannot be combined with --token-keep or --head-keep "
                           "(an importance run scores with K in full)")
        limit = ((1 << nm.prob_width) - 1) / (1 << nm.prob_frac_bits)
        if not (math.isfinite(args.threshold) and 0 <= args.threshold <= limit):
            raise CliError(f"--threshold must be from 0 to {limit:.6f}, not {args.threshold!r}")
        threshold = int(round(args.threshold * (1 << nm.prob_frac_bits)))
        if not 1 <= args.progressive <= nm.data_width - 1:
            raise CliError(f"--progressive must be from 1 to {nm.data_width - 1} (bits of K), "
                           f"not {args.progressive}")
    computed_tokens = seq_len if tokens is None else len(tokens)
    computed_heads = heads if head_list is None else len(head_list)
    for flag, keep, bound in (("--token-keep", args.token_keep, computed_tokens),
                              ("--head-keep", args.head_keep, computed_heads)):
        if keep is not None and not 1 <= keep <= bound:
            raise CliError(f"{flag} must be from 1 to {bound} (what the run computes), not {keep}")
    plan = dict(tokens=tokens, heads=head_list, token_keep=args.token_keep, head_keep=args.head_keep,
                msb_bits=args.progressive, threshold=threshold)
    return plan if any(v is not None for v in plan.values()) else None


def cascade_inputs(plan: dict, q, k, v):
    """q, k, v as (H, L, d), gathered to the plan's tokens and heads (what the DMA fetches)."""
    from attn_rtl.sim.pruning import gather

    return [gather(x if x.ndim == 3 else x[None], plan["tokens"], plan["heads"]) for x in (q, k, v)]


def cascade_report(plan: dict, layer, heads: int, seq_len: int) -> dict:
    """The JSON figures of a pruned or progressive layer (original indices throughout)."""
    tokens = np.arange(seq_len) if plan["tokens"] is None else plan["tokens"]
    head_ids = np.arange(heads) if plan["heads"] is None else plan["heads"]
    out = {"tokens": tokens.tolist(), "heads_computed": head_ids.tolist()}
    if plan["msb_bits"] is not None:
        out.update(progressive_msb_bits=plan["msb_bits"], threshold=plan["threshold"],
                   recomputed_rows=layer.recomputed_rows, recomputed_fraction=layer.recomputed_fraction,
                   k_bytes_fetched=layer.k_bytes_fetched, k_bytes_full=layer.k_bytes_full)
        return out
    out.update(k_bytes_fetched=layer.fetched.k, bytes_fetched=layer.fetched.total, recomputed_rows=0)
    if layer.importance is not None:
        out.update(importance=dict(zip(map(int, tokens[layer.tokens]), map(int, layer.importance))),
                   head_importance=dict(zip(map(int, head_ids[layer.heads]), map(int, layer.head_importance))))
    if layer.kept_tokens is not None:
        out["kept_tokens"] = tokens[layer.kept_tokens].tolist()
    if layer.kept_heads is not None:
        out["kept_heads"] = head_ids[layer.kept_heads].tolist()
    return out
