#!/usr/bin/env python3
"""Checks the documentation against the tree: run `python3 docs/check.py` from anywhere.

- Every relative link in README.md, SECURITY.md, docs/*.md and results/**/*.md names a file
  or directory that exists, and every `#anchor` a heading of the target (GitHub's slugs).
- Every test cited in docs/guarantees.md (a list item `- [`FILE`](PATH): `name`, ...`)
  is a function defined in that file.
- No document or source comment refers to a "design brief" the reader does not have.

Exit status 1 with one line per problem, 0 when all is well.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*|_(?=\W)|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(path: pathlib.Path):
    """The lines of a Markdown file outside code fences, with their numbers."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(path: pathlib.Path) -> set:
    found, seen = set(), {}
    for _, line in prose_lines(path):
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def documents():
    yield ROOT / "README.md"
    yield ROOT / "SECURITY.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted((ROOT / "results").rglob("*.md"))


def check_links(problems: list):
    for doc in documents():
        for number, line in prose_lines(doc):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (doc.parent / file_part).resolve() if file_part else doc
                where = f"{doc.relative_to(ROOT)}:{number}"
                if not dest.exists():
                    problems.append(f"{where}: {target}: no such file")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{where}: {target}: no heading #{anchor} in {dest.relative_to(ROOT)}")


def check_cited_tests(problems: list):
    doc = ROOT / "docs" / "guarantees.md"
    item = re.compile(r"^- \[`[^`]+`\]\(([^)]+)\)[^:]*: (.*)$")
    for number, line in prose_lines(doc):
        m = item.match(line)
        if not m or not m.group(1).endswith(".rs"):
            continue
        source = (doc.parent / m.group(1)).resolve()
        if not source.exists():
            continue  # reported by check_links
        text = source.read_text(encoding="utf-8")
        for name in re.findall(r"`([a-z0-9_]+)`", m.group(2).split(" (")[0]):
            if not re.search(rf"\bfn {name}\s*\(", text):
                problems.append(f"docs/guarantees.md:{number}: no test `{name}` in {source.relative_to(ROOT)}")


def check_no_brief(problems: list):
    pattern = re.compile(r"design brief|the brief", re.IGNORECASE)
    skip = {"target", "node_modules", ".git"}
    for path in ROOT.rglob("*"):
        if path.suffix not in {".rs", ".md"} or skip & set(path.relative_to(ROOT).parts):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line) and path != pathlib.Path(__file__):
                problems.append(f"{path.relative_to(ROOT)}:{number}: refers to a brief the reader does not have")


def main() -> int:
    problems: list = []
    check_links(problems)
    check_cited_tests(problems)
    check_no_brief(problems)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
