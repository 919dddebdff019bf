"""The client snippets in the READMEs are copies of tested examples: each block marked
``<!-- from PATH -->`` must appear verbatim in PATH."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "clients/python/README.md", "clients/js/README.md"]
SNIPPET = re.compile(r"<!-- from (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("doc", DOCS)
def test_snippets_are_copied_from_examples(doc: str) -> None:
    snippets = SNIPPET.findall((ROOT / doc).read_text())
    assert snippets, f"{doc} has no snippet marked with its example"
    for source, code in snippets:
        assert code in (ROOT / source).read_text(), f"{doc}: a snippet differs from {source}:\n{code}"
