"""The package stays readable: short functions (issue 11: none over 60 lines)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "relion_qsub"
MAX_LINES = 60


def test_no_function_over_60_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these into functions with one job each:\n" + "\n".join(long)


def test_plain_python_no_hand_tuned_idioms() -> None:
    """Issue 19: value classes are dataclasses (frozen, slots), TYPE_CHECKING comes from typing; the submit path's
    budget (benchmarks/bench_check.py) is a guard against heavy imports, not a reason for a second style."""
    package = Path(__file__).resolve().parent.parent / "relion_qsub"
    found = []
    for path in sorted(package.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("__slots__") or line.startswith("TYPE_CHECKING = False"):
                found.append(f"{path.relative_to(package.parent)}:{number}: {line.strip()}")
    assert not found, "hand-tuned idioms left:\n" + "\n".join(found)
