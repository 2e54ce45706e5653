"""Attention workloads for the cost model: presets as data, TOML files, validation.

A workload is one attention layer as the engine runs it: ``seq_len`` tokens, ``heads`` heads of
``head_dim``, a pattern (sim/sparse.py), for decoder layers the K/V heads and the new queries
(grouped-query attention, a KV-cache decode step), and optionally SpAtten's cascade pruning (the fraction of
tokens and heads this layer still computes, and whether it ranks them for the next layer) and
progressive quantization (K's MSBs first, a fraction of rows recomputed with full K).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from attn_rtl.sim.sparse import SparsePattern

__all__ = ["Workload", "WORKLOADS", "load_workload", "workload_from_dict"]


@dataclass(frozen=True)
class Workload:
    """One attention layer.

    Parameters
    ----------
    name : str
    seq_len, head_dim, heads : int
        ``L``, ``d`` and ``H`` before pruning.
    pattern : SparsePattern
        Which (query, key) pairs take part; dense by default.
    kv_heads : int or None
        K/V heads (``heads`` a multiple of it; default ``heads``): grouped-query attention.
    q_len : int or None
        New queries, the newest of ``seq_len`` positions (default ``seq_len``; 1: a decode step).
        Fewer queries and grouped heads need the dense or a causal pattern, and no pruning.
    token_keep, head_keep : float
        Fraction of the tokens and heads left by the layers before (cascade pruning): the layer
        runs over ``ceil(token_keep·L)`` tokens and ``ceil(head_keep·H)`` heads. Dense only.
    rank : bool
        The layer ranks its tokens and heads for the next one (an importance run).
    msb_bits : int or None
        Progressive quantization: the first run reads K's ``msb_bits`` most significant bits.
    recompute_fraction : float
        Progressive quantization: the fraction of query rows the second run recomputes with full K.
    """
    name: str
    seq_len: int
    head_dim: int
    heads: int = 1
    pattern: SparsePattern = field(default_factory=SparsePattern)
    token_keep: float = 1.0
    head_keep: float = 1.0
    rank: bool = False
    msb_bits: int | None = None
    recompute_fraction: float = 0.0
    kv_heads: int | None = None
    q_len: int | None = None

    def __post_init__(self):
        for key in ("seq_len", "head_dim", "heads"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"workload {self.name}: {key} must be a positive integer, not {value!r}")
        for key in ("token_keep", "head_keep"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValueError(f"workload {self.name}: {key} must be a fraction in (0, 1], not {value!r}")
        if not isinstance(self.rank, bool):
            raise ValueError(f"workload {self.name}: rank must be true or false, not {self.rank!r}")
        if self.msb_bits is not None and (isinstance(self.msb_bits, bool) or not isinstance(self.msb_bits, int)
                                          or not 1 <= self.msb_bits < 8):
            raise ValueError(f"workload {self.name}: msb_bits must be an integer from 1 to 7, not {self.msb_bits!r}")
        f = self.recompute_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise ValueError(f"workload {self.name}: recompute_fraction must be a fraction in [0, 1], not {f!r}")
        if f and self.msb_bits is None:
            raise ValueError(f"workload {self.name}: recompute_fraction needs msb_bits (progressive quantization)")
        sparse = not self.pattern.is_dense
        if sparse and (self.tokens < self.seq_len or self.rank or self.msb_bits is not None):
            raise ValueError(f"workload {self.name}: pruning, ranking and progressive quantization need the dense "
                             f"pattern, not {self.pattern.kind}")
        self.pattern.check(self.tokens)
        for key in ("kv_heads", "q_len"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"workload {self.name}: {key} must be a positive integer, not {value!r}")
        if self.heads % self.groups:
            raise ValueError(f"workload {self.name}: heads ({self.heads}) must be a multiple of kv_heads, "
                             f"not {self.groups}")
        if self.q_len is not None and self.q_len > self.seq_len:
            raise ValueError(f"workload {self.name}: q_len must be at most seq_len ({self.seq_len}), not {self.q_len}")
        if self.is_decoder:
            if not (self.pattern.is_dense or self.pattern.is_causal):
                raise ValueError(f"workload {self.name}: kv_heads and q_len need the dense or a causal pattern, "
                                 f"not {self.pattern.kind}")
            if self.tokens < self.seq_len or self.heads_computed < self.heads or self.rank \
                    or self.msb_bits is not None:
                raise ValueError(f"workload {self.name}: pruning, ranking and progressive quantization take "
                                 f"kv_heads = heads and q_len = seq_len")

    @property
    def groups(self) -> int:
        """K/V heads."""
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def group(self) -> int:
        """Query heads per K/V head."""
        return self.heads // self.groups

    @property
    def queries(self) -> int:
        """Queries per head: the newest ``q_len`` of the positions, or every token the layer computes."""
        return self.tokens if self.q_len is None else self.q_len

    @property
    def is_decoder(self) -> bool:
        """Grouped heads or fewer queries than keys."""
        return self.group != 1 or self.queries != self.tokens

    @property
    def tokens(self) -> int:
        """Tokens the layer computes (after pruning)."""
        return math.ceil(self.token_keep * self.seq_len - 1e-9)

    @property
    def heads_computed(self) -> int:
        return math.ceil(self.head_keep * self.heads - 1e-9)

    @property
    def recomputed_rows(self) -> int:
        return math.ceil(self.recompute_fraction * self.tokens - 1e-9)


#: The workloads of the issues: encoders (BERT, Longformer, ViL) and decoder LLMs' two phases, prefill
#: (every query of the prompt, causal) and one decode step (one query per head against the KV cache).
WORKLOADS = {
    "bert-base": Workload("bert-base", seq_len=512, head_dim=64, heads=12),
    "longformer-base": Workload("longformer-base", seq_len=4096, head_dim=64, heads=12,
                                pattern=SparsePattern("window", window=512, global_tokens=(0,))),
    "vil-stage1": Workload("vil-stage1", seq_len=56 * 56, head_dim=64, heads=1,
                           pattern=SparsePattern("grid", grid=(56, 56), window2d=(15, 15), global_tokens=(0,))),
    "gpt2-small-prefill": Workload("gpt2-small-prefill", seq_len=1024, head_dim=64, heads=12,
                                   pattern=SparsePattern("causal")),
    "llama3-8b-prefill": Workload("llama3-8b-prefill", seq_len=2048, head_dim=128, heads=32, kv_heads=8,
                                  pattern=SparsePattern("causal")),
    "llama3-8b-decode": Workload("llama3-8b-decode", seq_len=4096, head_dim=128, heads=32, kv_heads=8, q_len=1,
                                 pattern=SparsePattern("causal")),
    "llama3-70b-decode": Workload("llama3-70b-decode", seq_len=4096, head_dim=128, heads=64, kv_heads=8, q_len=1,
                                  pattern=SparsePattern("causal")),
    # Mistral-7B's sliding window of 4096 keys, 8192 tokens into the sequence: half the cache is outside it.
    "mistral-7b-decode": Workload("mistral-7b-decode", seq_len=8192, head_dim=128, heads=32, kv_heads=8, q_len=1,
                                  pattern=SparsePattern("causal-window", window=4096)),
}

_KEYS = {"name", "seq_len", "head_dim", "heads", "pattern", "window", "dilation", "grid", "window2d",
         "global_tokens", "token_keep", "head_keep", "rank", "msb_bits", "recompute_fraction", "kv_heads", "q_len"}


def workload_from_dict(spec: dict, *, name: str = "workload") -> Workload:
    """A workload from a TOML-style table; unknown keys and bad values are errors naming them."""
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ValueError(f"workload {name}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    spec = dict(spec)
    name = spec.pop("name", name)
    for key in ("seq_len", "head_dim"):
        if key not in spec:
            raise ValueError(f"workload {name}: {key} is required")
    kind = spec.pop("pattern", "dense")
    pattern_fields = {k: spec.pop(k) for k in ("window", "dilation", "grid", "window2d", "global_tokens")
                      if k in spec}
    for k in ("grid", "window2d", "global_tokens"):
        if k in pattern_fields:
            pattern_fields[k] = tuple(pattern_fields[k])
    try:
        pattern = SparsePattern(kind, **pattern_fields)
    except (TypeError, ValueError) as err:
        raise ValueError(f"workload {name}: {err}") from None
    return Workload(name=name, pattern=pattern, **spec)


def load_workload(name_or_file: str) -> Workload:
    """A preset by name, or a TOML file (keys at the top level or in a ``[workload]`` table)."""
    if name_or_file in WORKLOADS:
        return WORKLOADS[name_or_file]
    path = Path(name_or_file)
    if not path.suffix == ".toml" and not path.exists():
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)} or a .toml file, not {name_or_file!r}")
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"workload file {name_or_file} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"workload file {name_or_file} is not valid TOML: {err}") from None
    spec = spec.get("workload", spec)
    return workload_from_dict(spec, name=path.stem)
