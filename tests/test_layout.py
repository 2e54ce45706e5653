"""The architecture as rules on imports, read from every module's source (docs/api.md, *Layout*).

- the numerics contract and the validators (``attn_rtl.numerics``, ``attn_rtl.params``) import nothing of
  the project's packages;
- ``sim`` (the golden models) never imports ``hdl``, ``gen`` or ``tb``: the reference is never derived
  from the design it checks;
- ``hdl`` never imports ``sim``, ``gen`` or ``tb``;
- ``tb`` never imports ``gen``;
- nothing imports the old top-level names (``hdl``, ``sim``, ``gen``, ``tb``) or the package by a path;
- every package folder is listed in ``pyproject.toml``, so the wheel holds every module.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import attn_rtl

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]   # attn_rtl.hdl -> hdl, ...

#: Package (the part of attn_rtl a module belongs to) -> packages it may not import.
FORBIDDEN = {
    "core": {"hdl", "sim", "tb", "gen"},
    "sim": {"hdl", "tb", "gen"},
    "hdl": {"sim", "tb", "gen"},
    "tb": {"gen"},
    "constraints": {"hdl", "sim", "tb", "gen"},
}
OLD_TOP_LEVEL = {"hdl", "sim", "gen", "tb"}


def _part(module: str) -> str:
    """``attn_rtl.sim.golden`` -> ``sim``; ``attn_rtl.numerics`` -> ``core``."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in {"hdl", "sim", "tb", "gen", "constraints"}:
        return parts[1]
    return "core"


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module ``source`` imports, as absolute names with their line (relative imports resolved)."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append((node.lineno, name))
            # `from attn_rtl import sim` imports the package sim
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names
                      if name in ("attn_rtl",) and alias.name in OLD_TOP_LEVEL]
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    part = _part(module)
    out = []
    for line, name in imports_of(source, module, is_package):
        top = name.split(".")[0]
        if top in OLD_TOP_LEVEL:
            out.append(f"{module}:{line} imports {name} (outside the attn_rtl namespace)")
        elif top == "attn_rtl" and _part(name) in FORBIDDEN.get(part, set()):
            out.append(f"{module}:{line} imports {name}: {part} never imports {_part(name)}")
    return out


def project_modules():
    """(module name, path, is_package) of every Python file the wheel installs."""
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if any(package + "." + ".".join(parts[:k]) in PACKAGE_DIRS for k in range(1, len(parts) + 1)):
                continue   # a mapped package of its own (attn_rtl.hdl inside attn_rtl/ would be listed twice)
            yield ".".join([package, *parts]), path, path.name == "__init__.py"


MODULES = list(project_modules())


def test_every_module_is_found():
    names = {m for m, _, _ in MODULES}
    assert {"attn_rtl.numerics", "attn_rtl.params", "attn_rtl.hdl.engine", "attn_rtl.sim.golden",
            "attn_rtl.tb.test_engine", "attn_rtl.gen.cli.sim", "attn_rtl.gen.flows.emit",
            "attn_rtl.gen.cost.model", "attn_rtl.gen.bench.engine"} <= names
    assert len(names) > 80


@pytest.mark.parametrize("module,path,is_package", MODULES, ids=[m for m, _, _ in MODULES])
def test_dependencies_point_one_way(module, path, is_package):
    assert violations(path.read_text(), module, is_package) == []


def test_the_rules_can_fail():
    """Each rule flags a module that breaks it."""
    assert violations("from attn_rtl.hdl.params import x\n", "attn_rtl.sim.golden") == [
        "attn_rtl.sim.golden:1 imports attn_rtl.hdl.params: sim never imports hdl"]
    assert violations("from ..hdl import engine\n", "attn_rtl.sim.golden")[0].endswith("sim never imports hdl")
    assert violations("import attn_rtl.sim.golden\n", "attn_rtl.hdl.softmax")[0].endswith("hdl never imports sim")
    assert violations("from attn_rtl.gen.generate import unit\n", "attn_rtl.tb.test_engine")[0].endswith(
        "tb never imports gen")
    assert violations("from attn_rtl import gen\n", "attn_rtl.tb.harness")[0].endswith("tb never imports gen")
    assert violations("from .hdl.engine import x\n", "attn_rtl.numerics")[0].endswith("core never imports hdl")
    assert "outside the attn_rtl namespace" in violations("from sim.golden import x\n", "attn_rtl.gen.simulate")[0]
    assert violations("from attn_rtl.sim.golden import x\n", "attn_rtl.gen.simulate") == []
    assert violations("from .golden import x\n", "attn_rtl.sim.engine_stream") == []


def test_every_package_folder_is_in_the_wheel():
    """Python packages and the folders of data beside them (hdl/models, gen/flows/sweeps) alike."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    folders = {m for m, _, is_package in MODULES if is_package}
    for package, folder in PACKAGE_DIRS.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_dir() and path.name != "__pycache__" and not (path / "__init__.py").exists():
                folders.add(".".join([package, *path.relative_to(REPO / folder).parts]))
    assert folders == listed, f"pyproject.toml [tool.setuptools] packages differs: {sorted(folders ^ listed)}"


def test_the_version_has_one_home():
    from attn_rtl.gen.provenance import VERSION

    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "attn_rtl.__version__"}
    from importlib import metadata

    assert VERSION == attn_rtl.__version__ == metadata.version("attn-rtl")
