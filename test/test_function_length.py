"""No function of the library code is longer than a screen (80 lines, docstring included)."""

import ast
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ('vd_ros', 'training', 'bench', 'tools')
MAX_LINES = 80


def long_functions():
    """Return 'file:line name (N lines)' for every function over MAX_LINES lines."""
    found = []
    for source in SOURCES:
        for path in sorted(glob.glob(os.path.join(ROOT, source, '**', '*.py'), recursive=True)):
            if os.sep + 'tests' + os.sep in path:
                continue
            with open(path, encoding='utf-8') as stream:
                tree = ast.parse(stream.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_LINES:
                        found.append(f'{os.path.relpath(path, ROOT)}:{node.lineno} '
                                     f'{node.name} ({lines} lines)')
    return found


@pytest.mark.linter
def test_no_function_over_a_screen():
    assert long_functions() == []
