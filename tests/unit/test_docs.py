"""The commands the README and docs/deployment.md tell people to run exist as written, and
docs/troubleshooting.md explains every error code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.error_codes import produced_codes
from volcimage.catalog.models import load_catalog
from volcimage.cli import build_parser

ROOT = Path(__file__).parents[2]
GUIDES = [ROOT / "docs" / "guide.md", ROOT / "docs" / "guide.zh.md"]
DOCS = [ROOT / "README.md", ROOT / "docs" / "deployment.md", ROOT / "docs" / "troubleshooting.md"]
DOCS += GUIDES


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


def test_the_readme_tables_name_every_model_of_the_catalog() -> None:
    readme = (ROOT / "README.md").read_text()
    catalog = load_catalog()
    listed = set(
        re.findall(r"^\| `([a-z0-9.-]+)`(?: \(default\))?(?:, `([a-z0-9.-]+)`)? \|", readme, re.M)
    )
    ids = {model_id for pair in listed for model_id in pair if model_id}
    assert ids == {m.id for m in catalog.models}
    # "| … | `ARK_API_KEY` | Seedream 3.0, 4.0, 4.5; SeedEdit 3.0 |": names by credential
    for provider, variable in (("ark", "`ARK_API_KEY`"), ("visual", "`VOLC_ACCESS_KEY`")):
        row = next(line for line in readme.splitlines() if f"| {variable}" in line)
        named = set()
        for group in row.rstrip(" |").rsplit("|", 1)[1].split(";"):
            family = ""
            for item in group.strip().split(", "):
                family = family if item[0].isdigit() else item.split(" ")[0]
                named.add(item if not item[0].isdigit() else f"{family} {item}")
        expected = {
            re.sub(r"\s*[^\x00-\x7f]+$", "", m.name)  # "Jimeng 4.0 即梦" → "Jimeng 4.0"
            for m in catalog.models
            if m.provider == provider
        }
        assert named == expected, (provider, named ^ expected)


def test_the_troubleshooting_page_explains_every_error_code_the_app_can_produce() -> None:
    """Each code named in backticks on the page, and each family of codes made with f-strings
    (`Job…`, `HTTP…`) by its start and an ellipsis."""
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    explained = set(re.findall(r"`([^`\s]+)`", page))
    codes, shapes = produced_codes()
    missing = sorted(codes - explained) + sorted(
        f"{s}…" for s in shapes if f"{s}…" not in explained
    )
    assert not missing, f"error codes docs/troubleshooting.md does not explain: {missing}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_the_guides_model_tables_name_every_model_of_the_catalog(guide: Path) -> None:
    rows = [line for line in guide.read_text().splitlines() if line.startswith("| ")]
    named = {m for line in rows for m in re.findall(r"`([a-z0-9.-]+)`", line.split("|")[1])}
    assert named == {m.id for m in load_catalog().models}


def test_the_readme_links_the_guides_troubleshooting_and_licence() -> None:
    readme = (ROOT / "README.md").read_text()
    for target in ("docs/guide.md", "docs/guide.zh.md", "docs/troubleshooting.md", "LICENSE"):
        assert f"]({target})" in readme, target
        assert (ROOT / target).is_file(), target
