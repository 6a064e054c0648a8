"""The commands the README and docs/deployment.md tell people to run exist as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from volcimage.cli import build_parser

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "deployment.md"]


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```(?:bash)?\n(.*?)```", doc.read_text(), re.S):
            for line in block.splitlines():
                command = line.split("#", 1)[0].strip()
                if command.startswith("volcimage "):
                    found.append((doc.name, command))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_the_commands() -> None:
    assert {c.split()[1] for _, c in COMMANDS} >= {"serve", "worker", "migrate"}


@pytest.mark.parametrize(("doc", "command"), COMMANDS)
def test_documented_command_parses(doc: str, command: str) -> None:
    build_parser().parse_args(shlex.split(command)[1:])


def test_make_targets_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, re.M))
    named = set(re.findall(r"`make ([a-z]+)`", (ROOT / "README.md").read_text()))
    named |= set(re.findall(r"^make ([a-z]+)", (ROOT / "README.md").read_text(), re.M))
    assert named and named <= targets, named - targets
