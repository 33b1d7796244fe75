"""The README is what a newcomer runs first: its example works as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs_and_says_what_it_claims() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README shows a Python example"
    code = blocks[0]
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)
    # the last line's comment states its value
    last = code.strip().splitlines()[-1]
    expr, _, claimed = last.partition("#")
    assert eval(expr, namespace) == int(claimed)


def test_readme_quick_start_is_the_two_make_commands() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Quick start")
    block = re.search(r"```\n(.*?)```", text[start:], flags=re.S)
    assert block is not None
    assert block.group(1).split("\n")[:2] == ["make demo", "make test"]
