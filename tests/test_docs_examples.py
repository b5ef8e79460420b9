"""Every Python block of the user-facing pages that show remedies runs as written (a page whose example raises
is a wrong page). Run: `.venv/bin/pytest tests/test_docs_examples.py`."""

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
PAGES = ["docs/beyond-the-gates.md"]


def _blocks(page: str) -> list[tuple[str, str]]:
    """(the heading above it, the code) of every ```python block of `page`."""
    text = (ROOT / page).read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        heading = re.findall(r"^## (.+)$", text[: match.start()], re.M)
        found.append((heading[-1] if heading else page, match.group(1)))
    return found


EXAMPLES = [(page, heading, code) for page in PAGES for heading, code in _blocks(page)]


def test_the_pages_have_their_examples():
    assert len(EXAMPLES) == 7, [heading for _, heading, _ in EXAMPLES]


@pytest.mark.parametrize(("page", "heading", "code"), EXAMPLES, ids=[h.split(":")[0] for _, h, _ in EXAMPLES])
def test_the_example_runs(page, heading, code):
    torch.manual_seed(0)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"{page}: {heading}", "exec"), {})  # the page's own example, as a reader runs it
    if "print(" in code:
        assert printed.getvalue().strip(), "the example prints what it measured"
