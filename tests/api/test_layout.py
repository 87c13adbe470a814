"""The layout shows the layers, and stays small: conventions enforced by a test.

* ``losses/`` and ``metrics/`` never import each other; ``_core/`` and ``geometry/`` import
  nothing above them; no module imports a private name of another public module (the private
  modules and packages, ``_core`` and a package's ``_``-modules, are the shared seams);
* no module over 800 lines, no function over 80 code lines (docstring, comments and blank lines
  excluded);
* only ``_core/docs.py`` and ``_core/define.py`` (for the functions ``define_loss`` generates)
  write ``__doc__``.
"""

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "jaxseg_losses"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 800
MAX_FUNCTION_CODE_LINES = 80
DOC_WRITERS = {"_core/docs.py", "_core/define.py"}
# What each layer may import (the layers below it); a module may always import its own layer.
LAYERS = {
    "_core": {"_core"},
    "geometry": {"_core", "geometry"},
    "losses": {"_core", "geometry", "losses"},
    "metrics": {"_core", "geometry", "metrics"},
}


def _relative(path: pathlib.Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _layer(module: str) -> str:
    """``jaxseg_losses.losses.region`` -> ``losses``; top-level modules are their own layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: pathlib.Path) -> str:
    parts = ["jaxseg_losses", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module):
    """``(module, name)`` for every ``from jaxseg_losses... import name`` (name None: module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxseg_losses"):
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jaxseg_losses"):
                    yield alias.name, None


def _is_private_seam(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def _code_lines(node: ast.AST, source_lines: list[str]) -> int:
    body = node.body  # type: ignore[attr-defined]
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return 0
    lines = source_lines[body[0].lineno - 1 : node.end_lineno]  # type: ignore[attr-defined]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_module_respects_the_layers(path):
    module = _module_name(path)
    allowed = LAYERS.get(_layer(module))
    for imported, name in _imports(ast.parse(path.read_text())):
        target_layer = _layer(imported if name is None else f"{imported}.{name}")
        if allowed is not None and imported != "jaxseg_losses":
            assert _layer(imported) in allowed, f"{module} imports {imported}"
        if allowed is not None and imported == "jaxseg_losses":
            assert target_layer in allowed, f"{module} imports jaxseg_losses.{name}"
        if name is not None and name.startswith("_"):
            # A private module is a seam; a private name of a public module is not.
            assert _is_private_seam(imported) or _is_module(f"{imported}.{name}"), (
                f"{module} imports the private name {name} of the public module {imported}"
            )


def _is_module(dotted: str) -> bool:
    path = PACKAGE.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_module_and_functions_are_small(path):
    source = path.read_text()
    lines = source.splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{_relative(path)}: {len(lines)} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            count = _code_lines(node, lines)
            assert count <= MAX_FUNCTION_CODE_LINES, f"{node.name}: {count} code lines"


def _public_callables():
    import jaxseg_losses as jsl

    for module in (jsl, jsl.metrics, jsl.per_sample, jsl.accumulate):
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if callable(obj):
                yield f"{module.__name__}.{name}", obj


def test_every_shared_block_of_a_public_docstring_is_filled():
    marker = re.compile(r"^\s*<[a-z][a-z0-9 _-]*>\s*$", re.MULTILINE)
    unfilled = [name for name, obj in _public_callables() if marker.search(obj.__doc__ or "")]
    assert not unfilled


def test_only_the_docs_helper_and_define_loss_write_docstrings():
    writers = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            if isinstance(node, ast.Assign | ast.AugAssign) and any(
                isinstance(t, ast.Attribute) and t.attr == "__doc__" for t in targets
            ):
                writers.add(_relative(path))
    assert writers <= DOC_WRITERS, writers - DOC_WRITERS
