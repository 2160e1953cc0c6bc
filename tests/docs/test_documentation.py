"""The documentation: the MkDocs site builds in strict mode, and every relative link and anchor of
README.md and docs/ resolves, both as GitHub renders the files and as MkDocs builds the site."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

DOCS = REPOSITORY / "docs"
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [REPOSITORY / "README.md", REPOSITORY / "conf" / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced code blocks, HTML comments and code spans, where a link is no link."""
    return CODE_SPAN.sub("", HTML_COMMENT.sub("", FENCE.sub("", text)))


def heading_texts(text: str) -> list[str]:
    """Each heading as rendered text: markup characters and link targets removed."""
    headings = []
    for match in HEADING.finditer(FENCE.sub("", text)):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))
        headings.append(title.replace("`", "").replace("*", ""))
    return headings


def github_anchor(title: str) -> str:
    """GitHub's heading id: lower case, punctuation but - and _ dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def mkdocs_anchor(title: str) -> str:
    """Python-Markdown's toc slugify, which MkDocs uses: ASCII only, runs of spaces and hyphens one hyphen."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_title).strip().lower())


def anchors(path: Path, slug) -> set[str]:
    """Every id a heading of the file gets, the -1, -2 ... suffixes of repeated headings included."""
    seen: dict[str, int] = {}
    result = set()
    for title in heading_texts(path.read_text(encoding="utf-8")):
        anchor = slug(title)
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}" if slug is github_anchor else f"{anchor}_{seen[anchor]}"
        else:
            seen[anchor] = 0
        result.add(anchor)
    return result


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http(s), mailto: not checked offline
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{target}: no file {resolved}")
            continue
        if DOCS in path.parents and DOCS not in resolved.parents:
            problems.append(f"{target}: a page of the site links outside docs/, which MkDocs cannot build")
        if anchor:
            if resolved.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not markdown")
                continue
            slugs = [github_anchor] + ([mkdocs_anchor] if DOCS in resolved.parents else [])
            for slug in slugs:
                if anchor not in anchors(resolved, slug):
                    problems.append(f"{target}: no heading of {resolved.name} has the {slug.__name__} '{anchor}'")
    return problems


def test_the_anchor_rules_match_the_renderers_on_known_headings():
    assert github_anchor("Four scores: `paper`, `signal`".replace("`", "")) == "four-scores-paper-signal"
    assert github_anchor("Is LoRA worth it? (the paper's Section 4.2)") == "is-lora-worth-it-the-papers-section-42"
    assert github_anchor("a - b") == "a---b"
    assert mkdocs_anchor("a - b") == "a-b"
    assert mkdocs_anchor("The exact excess loss and Theorem 2") == "the-exact-excess-loss-and-theorem-2"
    with_repeats = anchors_of_text("# A\n## A\n## A\n")
    assert with_repeats == ({"a", "a-1", "a-2"}, {"a", "a_1", "a_2"})


def anchors_of_text(text: str) -> tuple[set[str], set[str]]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "page.md"
        page.write_text(text, encoding="utf-8")
        return anchors(page, github_anchor), anchors(page, mkdocs_anchor)


def test_the_link_checker_finds_a_broken_file_and_a_broken_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n## A section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-section) [no file](missing.md) [no anchor](other.md#nowhere) "
        "`[in code](missing.md)` [web](https://example.org/x)\n```text\n[in a fence](missing.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "missing.md" in problems[0] and "nowhere" in problems[1]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(REPOSITORY)))
def test_every_relative_link_and_anchor_resolves(path):
    assert broken_links(path) == []


def test_every_page_of_docs_is_in_the_site_navigation():
    navigation = (REPOSITORY / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", navigation, re.MULTILINE))
    assert pages == listed


def test_the_readme_is_short():
    lines = (REPOSITORY / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the details belong in docs/"


def test_the_site_builds_in_strict_mode(tmp_path):
    """MkDocs' strict mode fails on any warning: a page missing from the navigation, a link to a page
    or an anchor that does not exist."""
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "method" / "index.html").exists()
