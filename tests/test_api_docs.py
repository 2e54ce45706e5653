"""docs/api.md's code runs as written: the blocks import from attn_rtl.hdl, and the engine inside a
user's Elaboratable simulates bit-exact against the golden model."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_the_api_page_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    namespace = {"__name__": "api_doc"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "lanes must be a positive integer, not 0" in out
    assert f"{len(namespace['expected'][0])} output beats bit-exact against the golden model" in out
    assert len(namespace["received"]) == len(namespace["expected"][0]) > 0
