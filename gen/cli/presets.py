"""``attn-rtl presets``: every named parameter set with its key figures."""

from __future__ import annotations


def cmd_presets(args) -> int:
    from attn_rtl.gen.generate import elaborate, manifest, unit
    from attn_rtl.gen.presets import DESCRIPTIONS, PRESETS

    key_figures = ("pe_count", "acc_width", "latency", "sum_latency", "memory_bits", "merge_levels",
                   "setup_cycles", "token_importance_width")
    for unit_name, presets in PRESETS.items():
        for name, params in presets.items():
            full = unit(unit_name).validate(**params)
            component = elaborate(unit_name, full)
            component._MustUse__silence = True   # built for its figures only
            derived = manifest(unit_name, component)["derived"]
            figures = ", ".join(f"{k}={derived[k]:,}" if isinstance(derived[k], int) else f"{k}={derived[k]}"
                                for k in key_figures if k in derived)
            print(f"{unit_name:8} {name:10} {DESCRIPTIONS.get((unit_name, name), '')}\n"
                  f"{'':20}figures: {figures}\n"
                  f"{'':20}[{', '.join(f'{k}={v}' for k, v in full.items() if k != 'numerics')}]")
    return 0


def add_parser(sub) -> None:
    pre = sub.add_parser("presets", help="list named parameter sets")
    pre.set_defaults(func=cmd_presets)
