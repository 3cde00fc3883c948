"""The guide snippets kept in tests/guides are still what the guides show (checked when
shared/guides sits beside the repository; the snippets themselves are run by other tests in
every clone)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guides"))
from guide_snippets import GUIDES, all_snippets, normalized, snippet  # noqa: E402


@pytest.mark.parametrize("name,guide", all_snippets())
def test_snippet_is_in_its_guide(name, guide):
    path = GUIDES / guide
    if not path.exists():
        pytest.skip(f"{GUIDES} is not beside the repository (the snippet still runs elsewhere)")
    assert normalized(snippet(name)) in normalized(path.read_text()), (
        f"{guide} no longer shows tests/guides/{name}: update the snippet to the guide")


def test_every_snippet_is_run_by_a_test():
    repo = Path(__file__).resolve().parents[2]
    users = [repo / "crates/engine-server/tests/guide.rs",
             repo / "tests/deploy/test_stack.py",
             repo / "tests/docker/test_engine_image.py"]
    text = "\n".join(p.read_text() for p in users)
    for name, _ in all_snippets():
        assert name in text, f"tests/guides/{name} is not run by any test"
