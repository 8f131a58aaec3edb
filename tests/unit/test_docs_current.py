"""The generated docs cannot drift from the code they describe."""

from __future__ import annotations

import difflib

import pytest

from domain.machines_doc import DOC_PATH, REGENERATE, render


def test_state_machine_docs_match_the_transition_tables() -> None:
    expected = render()
    current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    if current != expected:
        diff = difflib.unified_diff(
            current.splitlines(), expected.splitlines(), "docs/state-machines.md", "render()", lineterm=""
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"docs/state-machines.md is out of date with the transition tables in domain/machines.py.\n"
            f"Regenerate it with `{REGENERATE}` (from the project root) and commit the result.\n{shown}"
        )
