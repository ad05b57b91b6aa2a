"""The documentation tells the truth: its snippets run, its docstrings build, its tables match the code."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# --- docstrings: one parameter per line (griffe, run strictly by the docs build, warns otherwise) -----

_SECTIONS = ("Args:", "Arguments:", "Parameters:", "Keyword Args:", "Other Parameters:", "Attributes:")
_SEVERAL_NAMES = re.compile(r"^\*{0,2}\w+(\s*,\s*\*{0,2}\w+)+\s*(\([^)]*\))?:(\s|$)")


def several_parameters_per_line(docstring: str) -> list[str]:
    """Lines of a Google-style parameter section that document several parameters at once."""
    found, indent = [], None
    for line in docstring.splitlines():
        text = line.strip()
        if text in _SECTIONS:
            indent = -1
            continue
        if indent is None or not text:
            continue
        depth = len(line) - len(line.lstrip())
        if indent == -1:
            indent = depth
        if depth < indent:
            indent = None
        elif depth == indent and _SEVERAL_NAMES.match(text):
            found.append(text)
    return found


def test_the_docstring_check_finds_several_parameters_on_one_line():
    doc = "Summary.\n\nArgs:\n    a, b: two at once.\n    c: one,\n        d, e: continuation, fine.\n"
    assert several_parameters_per_line(doc) == ["a, b: two at once."]


def test_docstrings_document_one_parameter_per_line():
    offenders = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node)
                for line in several_parameters_per_line(docstring or ""):
                    offenders.append(f"{path.relative_to(ROOT)}:{getattr(node, 'name', '')}: {line}")
    assert not offenders, "document one parameter per line:\n" + "\n".join(offenders)


def test_ci_builds_the_docs_strictly_and_counts_warnings():
    """``mkdocs build --strict --quiet`` does not count warnings: the check could never fail."""
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "mkdocs build" in line]
    assert commands, ".ci/run does not build the docs"
    for command in commands:
        words = shlex.split(command, comments=True)
        assert "--strict" in words and "--quiet" not in words and "-q" not in words, command
