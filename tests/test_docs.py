"""The pages people read first: README.md for students, CONCEPTS.md and INSTRUCTORS.md beside it."""

from __future__ import annotations

import re

import pytest
from conftest import REPO_ROOT

from week2.machinery import course

PAGES = ["README.md", "CONCEPTS.md", "INSTRUCTORS.md", "homework/README.md", "deploy/aws.md"]
README_MAX_WORDS = 1500
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _section(text: str, heading: str) -> str:
    """The text under `heading` (a whole line), up to the next heading of the same or a higher level."""
    level = heading.split()[0]
    start = text.index(f"\n{heading}\n")
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", text) if m.start() > start]
    return text[start : min(ends, default=len(text))]


def test_the_readme_is_short_and_names_the_two_commands():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.split()) <= README_MAX_WORDS, f"README.md has {len(text.split())} words"
    assert "`make course`" in text and "`make test`" in text  # .ci/run calls README's test command


def test_the_readme_maps_every_notebook_under_its_part():
    text = (REPO_ROOT / "README.md").read_text()
    parts = {False: _section(text, "### Core week"), True: _section(text, "### Going further")}
    for notebook in course.read_course(REPO_ROOT / "notebooks"):
        link = f"(notebooks/{notebook.path.name})"
        assert link in parts[notebook.going_further], (
            f"{notebook.path.name} is not under its part in README.md"
        )
        assert link not in parts[not notebook.going_further], f"{notebook.path.name} is under both parts"


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_leads_to_a_file_of_the_repository(page):
    path = REPO_ROOT / page
    targets = [t.split("#")[0] for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:", t)]
    broken = [t for t in targets if t and not (path.parent / t).exists()]
    assert not broken, f"{page} links to what does not exist: {broken}"
