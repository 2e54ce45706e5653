"""Numpy golden models, fixed-point helpers and simulator runners of attn-rtl."""
