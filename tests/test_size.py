"""Size limits of the package's code: no function longer than K_MAX_FUNCTION_LINES lines,
no class that declares more than K_MAX_CLASS_FIELDS fields.

A function's length is from its ``def`` (decorators excluded) to its last line, docstring
and comments included.  A class's fields are the entries of its ``FIELDS`` table or its
``__slots__`` (a literal), or its annotated class-level names (a dataclass), whichever is
largest; the attributes a class without any of these sets are not counted."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tcpanalyze"
K_MAX_FUNCTION_LINES = 120
K_MAX_CLASS_FIELDS = 25
#: classes allowed more fields, and why
BIG_RECORDS = {
    ("api.py", "Connection"): "the public record of a connection: one attribute per key of its "
                              "flows --format jsonl object",
    ("api.py", "EndpointSummary"): "the public record of an endpoint: one attribute per key of its JSON object",
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def long_functions(tree: ast.Module, limit: int = K_MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function (methods and nested ones too) longer
    than ``limit`` lines."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append((node.name, node.lineno, n))
    return out


def _literal_len(value: ast.expr) -> int:
    if isinstance(value, (ast.Tuple, ast.List, ast.Set)):
        return len(value.elts)
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return 1
    return 0


def class_fields(cls: ast.ClassDef) -> int:
    """The number of fields ``cls`` declares (see the module docstring)."""
    table = slots = annotated = 0
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name) and target.id == "FIELDS":
                    table = _literal_len(stmt.value)
                elif isinstance(target, ast.Name) and target.id == "__slots__":
                    slots = _literal_len(stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            ann = ast.unparse(stmt.annotation)
            if not ann.startswith(("ClassVar", "typing.ClassVar")):
                annotated += 1
    return max(table, slots, annotated)


def big_classes(tree: ast.Module, limit: int = K_MAX_CLASS_FIELDS) -> list[tuple[str, int, int]]:
    return [(node.name, node.lineno, class_fields(node)) for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and class_fields(node) > limit]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_long_function(path):
    found = long_functions(_tree(path))
    assert not found, "; ".join(f"{path.name}:{line} {name} has {n} lines (limit {K_MAX_FUNCTION_LINES})"
                                for name, line, n in found)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_class_with_too_many_fields(path):
    found = [c for c in big_classes(_tree(path)) if (path.name, c[0]) not in BIG_RECORDS]
    assert not found, "; ".join(f"{path.name}:{line} {name} declares {n} fields (limit {K_MAX_CLASS_FIELDS})"
                                for name, line, n in found)


def test_big_records_are_still_there():
    """Every exception names a class that exists and still needs it."""
    for (module, name) in BIG_RECORDS:
        tree = _tree(PACKAGE / module)
        assert any(c[0] == name for c in big_classes(tree)), f"{module} {name}: no longer over the limit"


def test_the_checks_can_fail():
    """The two checks find a long function and a big class (so a pass above means something)."""
    body = "\n".join(f"    x{i} = {i}" for i in range(K_MAX_FUNCTION_LINES))
    tree = ast.parse(f"def f():\n{body}\n\nclass C:\n    def g(self):\n        pass\n")
    assert long_functions(tree) == [("f", 1, K_MAX_FUNCTION_LINES + 1)]
    fields = ", ".join(f'("f{i}", "long long")' for i in range(K_MAX_CLASS_FIELDS + 1))
    tree = ast.parse(f"class R:\n    FIELDS = ({fields})\n\nclass S:\n    __slots__ = ('a', 'b')\n"
                     "class D:\n    a: int\n    b: ClassVar[int]\n")
    assert big_classes(tree) == [("R", 1, K_MAX_CLASS_FIELDS + 1)]
    assert [class_fields(c) for c in tree.body] == [K_MAX_CLASS_FIELDS + 1, 2, 1]
