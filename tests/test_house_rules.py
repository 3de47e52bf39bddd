"""House rules, checked mechanically: no file in src/ over 400 lines, no function over 60 lines.

The few that were over when this test was written are listed by name; any other one fails, so the list only
shrinks. A function's length runs from its `def` line to its last line (decorators excluded).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "trainlab"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60

# Over the limits today; split them when they are next touched, and take them off these lists.
FILES_OVER: set[str] = set()
FUNCTIONS_OVER: set[str] = set()


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _functions(tree: ast.AST, prefix: str = ""):
    """Yield (qualified name, node) for every function, methods and nested functions included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")
        else:
            yield from _functions(node, prefix)


def test_no_file_in_src_is_over_400_lines_but_the_listed_ones():
    over = {
        f"{path.relative_to(SRC).as_posix()} ({lines} lines)"
        for path in _sources()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
        and path.relative_to(SRC).as_posix() not in FILES_OVER
    }
    assert over == set()


def test_no_function_in_src_is_over_60_lines_but_the_listed_ones():
    over = set()
    for path in _sources():
        module = path.relative_to(SRC).as_posix()
        for name, node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES and f"{module}:{name}" not in FUNCTIONS_OVER:
                over.add(f"{module}:{name} ({lines} lines)")
    assert over == set()


def test_the_length_check_counts_from_the_def_line_and_sees_methods_and_nested_functions():
    source = (
        "@decorator\n@another\ndef outer():\n    def inner():\n        pass\n\n"
        "class C:\n    def method(self):\n        return 1\n"
    )
    lengths = {name: node.end_lineno - node.lineno + 1 for name, node in _functions(ast.parse(source))}
    assert lengths == {"outer": 3, "outer.inner": 2, "C.method": 2}
