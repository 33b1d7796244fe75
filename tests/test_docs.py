"""Every docs page stays a readable size (a corrupt page once grew to 16 MB)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))

#: The largest page today is about 20 kB; a page past this limit should be split.
MAX_BYTES = 48_000
MAX_HEADINGS = 60


def test_there_are_pages():
    assert len(PAGES) >= 10
    assert (DOCS / "index.md").exists() and (DOCS / "api.md").exists()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_size_is_bounded(page: Path):
    text = page.read_text(encoding="utf-8")
    assert len(text.encode()) <= MAX_BYTES, f"{page.name}: {len(text.encode())} bytes"
    headings = re.findall(r"^#{1,6} ", text, flags=re.MULTILINE)
    assert len(headings) <= MAX_HEADINGS, f"{page.name}: {len(headings)} headings"
    assert max(map(len, text.splitlines()), default=0) <= 2_000, f"{page.name}: a runaway line"
