"""Every error code the Python code can produce, read from the source: the page must have
words for each (tests/e2e/test_page_ux.py) and the troubleshooting page must explain each
(tests/unit/test_docs.py)."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "volcimage"

CODE_NAMES = {"code", "error_code", "upstream_code", "meta_code"}


def _constants(node: ast.AST, codes: set[str], shapes: set[str]) -> None:
    """The string constants an expression can give, and the fixed starts of its f-strings."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        codes.add(node.value)
    elif isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            shapes.add(first.value)
    elif isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get":  # the default, not the key
            _constants(func.value, codes, shapes)
            for arg in node.args[1:]:
                _constants(arg, codes, shapes)
        elif isinstance(func, ast.Name) and func.id == "str":
            for arg in node.args:
                _constants(arg, codes, shapes)
    elif isinstance(node, ast.Dict):
        for value in node.values:
            _constants(value, codes, shapes)
    else:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                _constants(child, codes, shapes)


def produced_codes() -> tuple[set[str], set[str]]:
    """Every error code the Python code can put in an answer's `error` or a task's
    `error.code`, read from the source: assignments to and keywords named code / error_code /
    upstream_code, `{"error": ...}` bodies, the runner's `_finish` and `_error_code`, the
    middlewares' `_refuse`; and the emulator's faults (what a demo shows). Returns the codes
    and the fixed starts of codes made with f-strings (`Job…`, `HTTP…`)."""
    codes: set[str] = set()
    shapes: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names = target.elts if isinstance(target, ast.Tuple) else [target]
                    if isinstance(names[0], (ast.Name, ast.Attribute)):
                        name = getattr(names[0], "id", getattr(names[0], "attr", ""))
                        if name in CODE_NAMES:
                            value = node.value
                            if isinstance(value, ast.Tuple):
                                value = value.elts[0]
                            _constants(value, codes, shapes)
            elif isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg in CODE_NAMES:
                        _constants(keyword.value, codes, shapes)
                func = node.func
                called = getattr(func, "id", getattr(func, "attr", ""))
                positions = {"_finish": 2, "_refuse": 1, "error_body": 0}
                if called in positions and len(node.args) > positions[called]:
                    _constants(node.args[positions[called]], codes, shapes)
                if called in ("ArkError", "VisualError") and len(node.args) > 1:
                    arg = node.args[1]
                    if isinstance(arg, ast.Constant):
                        codes.add(str(arg.value))
                if called == "AuthError" and node.args:
                    _constants(node.args[0], codes, shapes)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    named = isinstance(key, ast.Constant) and key.value in ("error", "code")
                    if named and not isinstance(value, ast.Dict):  # not a schema's field
                        _constants(value, codes, shapes)
            elif isinstance(node, ast.FunctionDef) and node.name == "_error_code":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Return) and inner.value is not None:
                        _constants(inner.value, codes, shapes)
    from volcimage.emulator import ark as ark_emulator
    from volcimage.emulator import visual as visual_emulator
    from volcimage.providers import policy

    codes |= {fault[1] for fault in ark_emulator.FAULTS.values()}
    codes |= {str(fault[1]) for fault in visual_emulator.FAULTS.values()}
    codes |= set(policy.ARK) | {str(c) for c in policy.VISUAL}
    return codes, shapes
