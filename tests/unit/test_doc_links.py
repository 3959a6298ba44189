"""Every pointer into the documentation leads somewhere: a reader who follows one
finds the file and the section it names.

Two kinds of pointer, checked from the files' text:

* relative markdown links in README.md, docs/*.md, deploy/**/*.md and
  chaos/README.md: the file (or folder) exists, and a `#anchor` is the
  GitHub-style slug of a heading in the target;
* section names in code, deploy files, tests and docs, written as a document and
  a quoted heading: `(docs/install.md, "3. The nodes' ZooKeeper credential")` or
  `(README, "Quick start")`: the document exists and has exactly that heading.
  A bare `README` is the top-level README.md. Write the heading in double quotes
  (headings may hold an apostrophe); a pointer may wrap across comment lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.checkout import REPO

THIS_FILE = Path(__file__).resolve()

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title"; link text may hold
# one level of brackets.
LINK = re.compile(
    r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...

# A document and a quoted heading: docs/x.md, "Title"; README "Title"; chaos/README.md: "Title".
SECTION_POINTER = re.compile(
    r"(?<![\w/.-])(?P<doc>docs/[\w-]+\.md|(?:deploy|chaos)/[\w/-]*README\.md|README(?:\.md)?)"
    r"[,:]?\s+(?:section\s+)?(?:\"(?P<double>[^\"]{1,160})\"|'(?P<single>[^']{1,160})')"
)
POINTER_ROOTS = ("failoverd", "deploy", "tests", "chaos", ".ci", "docs")
POINTER_FILES = ("README.md", "CHANGELOG.md", "pyproject.toml")


def markdown_files() -> list[Path]:
    found = [REPO / "README.md", REPO / "chaos" / "README.md"]
    found += REPO.glob("docs/*.md")
    found += REPO.glob("deploy/**/*.md")
    return sorted({p for p in found if p.is_file()})


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a markdown file, fenced code blocks left out."""
    fence = ""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if m := FENCE.match(line):
            if not fence:
                fence = m[1]
            elif m[1] == fence:
                fence = ""
            continue
        if not fence:
            yield number, line


def slug(title: str) -> str:
    """GitHub's anchor for a heading: its rendered text lower-cased, spaces to
    hyphens, and everything but letters, digits, `-` and `_` dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link: its text
    text = text.replace("`", "").replace("*", "")
    kept = []
    for ch in text.strip().lower():
        if ch == " ":
            kept.append("-")
        elif ch.isalnum() or ch in "-_":
            kept.append(ch)
    return "".join(kept)


def headings(path: Path) -> list[str]:
    return [m["title"] for _, line in prose_lines(path) if (m := HEADING.match(line))]


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the file's headings (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for title in headings(path):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def heading_texts(path: Path) -> set[str]:
    """A file's headings as written and as rendered (without the backticks)."""
    return {t for title in headings(path) for t in (title, title.replace("`", ""))}


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.source.relative_to(REPO)}:{self.line}: ({self.target})"


def links(path: Path) -> Iterator[Link]:
    for number, line in prose_lines(path):
        line = INLINE_CODE.sub("code", line)
        for pattern in (LINK, REFERENCE):
            for m in pattern.finditer(line):
                yield Link(path, number, m["target"])


def broken(link: Link) -> str | None:
    """Why the link leads nowhere, or None."""
    if EXTERNAL.match(link.target):
        return None
    name, _, anchor = link.target.partition("#")
    target = (link.source.parent / name).resolve() if name else link.source
    if name.startswith("/"):
        return "an absolute path: the link breaks outside this checkout"
    if not target.exists():
        return "no such file"
    if not anchor:
        return None
    if target.suffix != ".md" or not target.is_file():
        return "an anchor into something that is not a markdown file"
    if anchor not in anchors(target):
        return f"no heading of {target.relative_to(REPO)} has the anchor #{anchor}"
    return None


FILES = markdown_files()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    problems = [f"{link}: {why}" for link in links(path) if (why := broken(link))]
    assert problems == []


def pointer_files() -> list[Path]:
    found = [REPO / name for name in POINTER_FILES]
    for root in POINTER_ROOTS:
        found += (p for p in (REPO / root).rglob("*") if "__pycache__" not in p.parts)
    return sorted({p for p in found if p.is_file() and p.resolve() != THIS_FILE})


def joined_text(path: Path) -> str | None:
    """The file's text with line breaks and the comment markers that continue a
    sentence folded into spaces, so a pointer wrapped over two lines reads as one."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    text = data.decode("utf-8", errors="replace")
    text = text.replace("\\'", "'").replace('\\"', '"')  # a quote escaped in source code
    return re.sub(r"[ \t]*\n[ \t]*(?:(?:#|//|--|;)+[ \t]*)?", " ", text)


@dataclass(frozen=True)
class SectionPointer:
    source: Path
    doc: str
    title: str

    def __str__(self) -> str:
        return f'{self.source.relative_to(REPO)}: ({self.doc}, "{self.title}")'


def section_pointers(path: Path) -> Iterator[SectionPointer]:
    text = joined_text(path)
    if text is None:
        return
    for m in SECTION_POINTER.finditer(text):
        doc = "README.md" if m["doc"] == "README" else m["doc"]
        yield SectionPointer(path, doc, m["double"] or m["single"])


def missing_section(pointer: SectionPointer) -> str | None:
    doc = REPO / pointer.doc
    if not doc.is_file():
        return "no such document"
    if pointer.title not in heading_texts(doc):
        return f"{pointer.doc} has no heading of exactly that text"
    return None


POINTERS = [p for path in pointer_files() for p in section_pointers(path)]


def test_every_section_a_file_names_by_its_heading_exists() -> None:
    problems = [f"{p}: {why}" for p in POINTERS if (why := missing_section(p))]
    assert problems == []


def test_the_pointers_found_include_the_operators_message() -> None:
    # --check's error for a config without ZooKeeper credentials names its section.
    assert any(
        p.source == REPO / "failoverd" / "checks" / "preflight.py" and p.doc == "docs/install.md"
        for p in POINTERS
    )


@pytest.mark.parametrize(
    ("title", "anchor"),
    [
        ("1. ZooKeeper, on zk1, zk2 and zk3", "1-zookeeper-on-zk1-zk2-and-zk3"),
        ("`ocf`: Pacemaker's resource agents", "ocf-pacemakers-resource-agents"),
        ("Without the package: from a checkout", "without-the-package-from-a-checkout"),
        (
            "Upgrading from a release without closed ZooKeeper access",
            "upgrading-from-a-release-without-closed-zookeeper-access",
        ),
        ("`health.checks[]` type `path`", "healthchecks-type-path"),
        ("Full run: 20 repetitions, commit `45e17f5`", "full-run-20-repetitions-commit-45e17f5"),
    ],
)
def test_slug_is_githubs(title: str, anchor: str) -> None:
    assert slug(title) == anchor


def test_a_broken_anchor_a_missing_file_and_an_old_readme_section_are_caught(
    tmp_path: Path,
) -> None:
    page = REPO / "docs" / "install.md"
    assert broken(Link(page, 1, "operations.md#exit-codes")) is None
    assert broken(Link(page, 1, "#without-the-package-from-a-checkout")) is None
    assert broken(Link(page, 1, "https://example.org/x.md#nope")) is None
    assert "anchor" in str(broken(Link(page, 1, "operations.md#zookeeper-access")))
    assert broken(Link(page, 1, "nowhere.md")) == "no such file"
    # A section of the README before the rewrite, as a comment wrapped over two lines.
    old = tmp_path / "zoo.cfg"
    old.write_text('# the price (README, "ZooKeeper\n#   minority") and more\n')
    [pointer] = section_pointers(old)
    assert (pointer.doc, pointer.title) == ("README.md", "ZooKeeper minority")
    assert missing_section(pointer) == "README.md has no heading of exactly that text"
    new = tmp_path / "preflight.py"
    new.write_text("""x = '(docs/install.md, "3. The nodes' ZooKeeper credential")'\n""")
    [pointer] = section_pointers(new)
    assert missing_section(pointer) is None
