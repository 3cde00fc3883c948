"""The guides' commands as the project keeps them (tests/guides/README.md)."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUIDES = REPO.parent / "shared" / "guides"

# Which guide each folder's snippets come from.
GUIDE_OF = {"matching-engine": "matching-engine-docker.md"}


def snippet(name: str, tcp_port: int | None = None, udp_port: int | None = None) -> str:
    """The snippet `folder/file`, with the guide's ports (1234 TCP, 1235 UDP) replaced when
    others are given."""
    text = (HERE / name).read_text()
    if tcp_port is not None:
        text = re.sub(r"\b1234\b", str(tcp_port), text)
    if udp_port is not None:
        text = re.sub(r"\b1235\b", str(udp_port), text)
    return text


def normalized(text: str) -> str:
    """Shell or Python text with line continuations joined, comments dropped and blanks
    folded, so a snippet can be found in a guide however either is wrapped or indented."""
    text = text.replace("\\\n", " ")
    lines = [re.sub(r"\s+#.*$", "", line) for line in text.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def all_snippets() -> list[tuple[str, str]]:
    """(snippet name, guide file name) for every snippet kept here."""
    return [(f"{folder}/{path.name}", guide)
            for folder, guide in GUIDE_OF.items()
            for path in sorted((HERE / folder).iterdir())]
