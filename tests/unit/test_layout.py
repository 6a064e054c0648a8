"""The shape of the code: imports point one way between packages, and modules stay small
(docs/architecture.md)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src" / "volcimage"
# A package may import only packages of earlier layers; the top-level modules (app, cli) wire
# everything together and import anything.
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("events", "catalog", "storage"),
    ("emulator",),  # serves the catalog's limits; providers run on it in demo mode
    ("providers", "http"),
    ("auth",),
    ("audit",),
    ("tasks",),
    ("images", "presets"),  # a preset keeps a view of the tasks' parameters
    ("queue", "users", "system", "retention", "backups"),
]
MAX_MODULE_LINES = 450
MAX_SCRIPT_LINES = 500


def _type_checking_only(tree: ast.Module) -> set[int]:
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes |= {id(inner) for inner in ast.walk(node)}
    return nodes


def _imported_packages(source: str, here: tuple[str, ...]) -> set[str]:
    """The volcimage packages a module (at `here` under volcimage/) imports, at any depth:
    a lazy import counts, one for type checking only does not."""
    tree = ast.parse(source)
    skipped = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here[: len(here) - node.level]
                names = [".".join(("volcimage", *base, node.module or ""))]
            elif node.module:
                names = [node.module]
                if node.module == "volcimage":
                    names = [f"volcimage.{alias.name}" for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("volcimage.")}
    return found


def package_imports() -> dict[str, set[str]]:
    imports: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2 or parts[0] == "migrations":
            continue  # a top-level module, or a migration (frozen in time, imports nothing)
        imports[parts[0]] |= _imported_packages(path.read_text("utf-8"), parts) - {parts[0]}
    return imports


def test_every_package_has_a_layer() -> None:
    layered = {name for layer in LAYERS for name in layer}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"migrations"}
    assert packages == layered


def test_packages_import_only_earlier_layers() -> None:
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    wrong = sorted(
        f"{package} (layer {rank[package]}) imports {other} (layer {rank.get(other)})"
        for package, others in package_imports().items()
        for other in others
        if other in rank and rank[other] >= rank[package]
    )
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_lazy_and_relative_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from volcimage.queue import runner\n"
        "def f():\n    from volcimage.images import service\n"
        "from ..users import routes\n"
    )
    assert _imported_packages(source, ("tasks", "service.py")) == {"images", "users"}


def test_modules_and_page_scripts_stay_small() -> None:
    big = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for pattern, limit in (("*.py", MAX_MODULE_LINES), ("*.js", MAX_SCRIPT_LINES))
        for path in ROOT.rglob(pattern)
        if "vendor" not in path.parts
        and "versions" not in path.parts
        and (lines := len(path.read_text("utf-8").splitlines())) > limit
    ]
    assert not big, "\n".join(big)
