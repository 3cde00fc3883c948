"""The README and docs/operations.md cannot rot:

- every bash block in README.md preceded by `<!-- docs-test -->` (optionally with
  `expect="text"` attributes, each of which must appear in the block's output) runs, in order,
  against a fresh `scripts/stack`. The blocks are written for the stack's default ports and
  `target/release`; the test rewrites `target/release/` to the binaries under test and the
  ports 9092/1234/1235 to the free ports the test's stack uses (and sets STREAM_ADDR);
- the Quick start keeps exactly its two set-up commands, `scripts/stack` then `scripts/test`;
- every environment variable a program reads (from its `--help`) is in docs/operations.md's
  tables with its default, and every STACK_* variable the docs mention exists in scripts/stack;
- relative links in README.md and docs/operations.md point at files that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from deploy_helpers import READY_TIMEOUT, REPO, bin_path, builds_in_ci, start_stack

README = REPO / "README.md"
OPERATIONS = REPO / "docs" / "operations.md"

MARKED = re.compile(r"<!--\s*docs-test(?P<attrs>[^>]*?)-->\s*\n```bash\n(?P<body>.*?)\n```", re.S)


def marked_blocks() -> list[tuple[str, list[str]]]:
    text = README.read_text()
    blocks = []
    for m in MARKED.finditer(text):
        expects = re.findall(r'expect="([^"]*)"', m.group("attrs"))
        blocks.append((m.group("body"), expects))
    return blocks


def test_readme_has_runnable_blocks():
    blocks = marked_blocks()
    assert len(blocks) >= 6, "the README's tour should keep its docs-test blocks"
    bodies = "\n".join(b for b, _ in blocks)
    for needed in ("stream-cli topics create", "stream-cli produce", "stream-cli consume",
                   "nc -u -w1", "struct.pack(\">I\""):
        assert needed in bodies, needed


def test_readme_commands_run_against_the_stack(tmp_path):
    # In CI this also runs the stack's own `cargo build`, as the README's command does.
    build = builds_in_ci()
    stack = start_stack(tmp_path, build=build)
    try:
        stack.wait_for("press Ctrl-C", timeout=900 if build else READY_TIMEOUT)
        env = dict(os.environ, STREAM_ADDR=f"127.0.0.1:{stack.stream_port}")
        ports = {"9092": stack.stream_port, "1234": stack.tcp_port, "1235": stack.udp_port}
        work = tmp_path / "work"
        work.mkdir()
        for i, (body, expects) in enumerate(marked_blocks()):
            script = body.replace("target/release/", f"{stack.bin_dir}/")
            script = re.sub(r"\b(9092|1234|1235)\b", lambda m: str(ports[m.group(1)]), script)
            r = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                capture_output=True, text=True, timeout=120,
            )
            out = r.stdout + r.stderr
            assert r.returncode == 0, f"README block {i} failed ({r.returncode}):\n{body}\n---\n{out}"
            for e in expects:
                assert e in out, f"README block {i}: {e!r} not in output:\n{body}\n---\n{out}"
        assert stack.stop() == 0, stack.output()
    finally:
        stack.kill()


def test_quick_start_keeps_its_two_commands():
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_block = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()
                if line.split("#")[0].strip()]
    assert commands == ["scripts/stack", "scripts/test"]


# ---------------------------------------------------------------------------------------------
# Configuration tables vs. the programs


def help_options(binary: Path) -> dict[str, str | None]:
    """env var -> default (None when the option has no default), from clap's --help."""
    text = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    out = {}
    # One block per option: from a line starting with `-x,` or `--name` to the next such line.
    for block in re.split(r"\n(?=\s{2,}(?:-\w, )?--[\w-])", text):
        env = re.search(r"\[env: ([A-Z0-9_]+)", block)
        if env:
            # clap prints the real default right after the env marker; a "[default: ...]" in
            # the description text is prose.
            default = re.search(r"\[env: [^\]]*\]\s*\[default: ([^\]]*)\]", block)
            out[env.group(1)] = default.group(1) if default else None
    return out


def table_rows(text: str) -> dict[str, str]:
    """First backticked cell of each table row -> the whole row."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([A-Z0-9_]+)`", line)
        if m:
            rows.setdefault(m.group(1), line)
    return rows


@pytest.mark.parametrize("program", ["stream-server", "matching_engine", "coinbase-bridge",
                                     "stream-cli"])
def test_operations_tables_list_every_variable_with_its_default(program):
    options = help_options(bin_path(program))
    assert options, f"{program} --help lists no environment variables"
    # The per-program section of docs/operations.md.
    ops = OPERATIONS.read_text()
    section = ops.split(f"### {program}\n", 1)[1].split("\n### ", 1)[0]
    rows = table_rows(section)
    for var, default in options.items():
        assert var in rows, (f"{var} ({program} --help) is not documented: add a row for it to "
                             f"the `### {program}` table of docs/operations.md")
        if default is not None and var != "ENGINE_THREADED":
            assert f"`{default}`" in rows[var], f"{var}: default {default!r} not in: {rows[var]}"
    # ... and nothing documented there that the program no longer reads.
    stale = sorted(set(rows) - set(options))
    assert not stale, f"documented for {program} but not in its --help: {stale}"


def test_stack_variables_are_documented_and_real():
    script = (REPO / "scripts" / "stack").read_text()
    read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", script)) | set(
        re.findall(r"\$\{([A-Z][A-Z0-9_]*):-?\}", script))
    read -= {"TMPDIR"}
    ops = OPERATIONS.read_text()
    section = ops.split("### scripts/stack\n", 1)[1].split("\n### ", 1)[0]
    rows = table_rows(section)
    assert read <= set(rows), f"undocumented: {sorted(read - set(rows))}"
    for doc in (README, OPERATIONS):
        for var in set(re.findall(r"\bSTACK_[A-Z_]+", doc.read_text())):
            assert var in script, f"{doc.name} mentions {var}, which scripts/stack does not read"


@pytest.mark.parametrize("doc", [README, OPERATIONS], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{doc.name}: broken link {target}"


def test_deploy_files_set_only_variables_the_programs_read():
    """A typo in an environment variable is silently ignored by the program: every STREAM_*,
    ENGINE_* and COINBASE_* name set in the compose files, Kubernetes manifests, ECS task
    definitions and the Dockerfile must be one that some program's --help lists."""
    known = set()
    for program in ("stream-server", "matching_engine", "coinbase-bridge", "stream-cli"):
        known |= set(help_options(bin_path(program)))
    files = [REPO / "Dockerfile", REPO / "docker-compose.yml", REPO / "docker-compose.host.yml",
             *sorted((REPO / "deploy").rglob("*.yaml")), *sorted((REPO / "deploy").rglob("*.json"))]
    for f in files:
        text = f.read_text()
        # Names that are set: `NAME:` / `NAME=` / `"name": "NAME"` / `- name: NAME`.
        set_here = set(re.findall(r"\b((?:STREAM|ENGINE|COINBASE)_[A-Z0-9_]+)\s*[:=](?!-)", text))
        set_here |= set(re.findall(r'"name":\s*"((?:STREAM|ENGINE|COINBASE)_[A-Z0-9_]+)"', text))
        set_here |= set(re.findall(r"name:\s*((?:STREAM|ENGINE|COINBASE)_[A-Z0-9_]+)", text))
        unknown = sorted(set_here - known)
        assert not unknown, f"{f.relative_to(REPO)} sets variables no program reads: {unknown}"
