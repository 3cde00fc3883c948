"""deploy/k8s and deploy/ecs: valid documents with what an operator needs.

Kubernetes: every document is checked against the Kubernetes OpenAPI schemas by the PyPI
package `kubernetes-validate` (strict: unknown fields fail) when it is installed, and always by
the structural checks below. ECS: every task definition is validated against botocore's model
of the RegisterTaskDefinition API (the input `aws ecs register-task-definition
--cli-input-json` takes), offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from deploy_helpers import REPO

K8S = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
ECS = sorted((REPO / "deploy" / "ecs").glob("*.json"))


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_k8s() -> dict[tuple[str, str], dict]:
    out = {}
    for p in K8S:
        for d in docs(p):
            out[(d["kind"], d["metadata"]["name"])] = d
    return out


def test_k8s_files_exist():
    names = {p.name for p in K8S}
    assert {"stream-processor.yaml", "matching-engine.yaml"} <= names


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_schema(path):
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    for d in docs(path):
        # Raises ValidationError (with the offending path) on any schema violation.
        kv.validate(d, kv.latest_version(), strict=True)


def test_k8s_schema_check_is_real():
    kv = pytest.importorskip("kubernetes_validate")
    d = docs(REPO / "deploy" / "k8s" / "matching-engine.yaml")[1]
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "1234"
    with pytest.raises(kv.ValidationError):
        kv.validate(d, kv.latest_version(), strict=True)


def workloads():
    objs = all_k8s()
    return {
        "stream-processor": objs[("StatefulSet", "stream-processor")],
        "matching-engine": objs[("Deployment", "matching-engine")],
    }


@pytest.mark.parametrize("name", ["stream-processor", "matching-engine"])
def test_k8s_workload(name):
    objs = all_k8s()
    wl = workloads()[name]
    pod = wl["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert wl["spec"]["replicas"] == 1
    assert all(labels.get(k) == v for k, v in wl["spec"]["selector"]["matchLabels"].items())
    (c,) = pod["spec"]["containers"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    for probe in ("readinessProbe", "livenessProbe"):
        assert "tcpSocket" in c[probe], probe
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    port_names = {p["name"]: (p["containerPort"], p["protocol"]) for p in c["ports"]}
    # The Service selects these pods and targets ports the container declares.
    svc = objs[("Service", name)]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    for sp in svc["spec"]["ports"]:
        target = sp["targetPort"]
        assert target in port_names, target
        assert port_names[target] == (sp["port"], sp["protocol"])


def test_k8s_stream_processor_has_persistent_data():
    sts = workloads()["stream-processor"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storage" in claim["spec"]["resources"]["requests"]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["STREAM_DATA_DIR"] == "/data" and env["STREAM_PORT"] == "9092"
    assert c["command"][-1] == "/usr/local/bin/stream-server"


def test_k8s_matching_engine_ports_and_threading():
    dep = workloads()["matching-engine"]
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert {(p["containerPort"], p["protocol"]) for p in c["ports"]} == {(1234, "TCP"), (1235, "UDP")}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["ENGINE_THREADED"] == "true"
    assert c["readinessProbe"]["tcpSocket"]["port"] in ("orders-tcp", 1234)


# ---------------------------------------------------------------------------------------------
# ECS


def ecs_input_shape():
    botocore_session = pytest.importorskip("botocore.session")
    model = botocore_session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def test_ecs_files_exist():
    assert {p.name for p in ECS} == {
        "matching-engine.task-definition.json",
        "stream-processor.task-definition.json",
    }


@pytest.mark.parametrize("path", ECS, ids=lambda p: p.name)
def test_ecs_task_definition_validates(path):
    from botocore.validate import ParamValidator

    shape = ecs_input_shape()
    doc = json.loads(path.read_text())
    report = ParamValidator().validate(doc, shape)
    assert not report.has_errors(), report.generate_report()
    assert doc["requiresCompatibilities"] == ["FARGATE"] and doc["networkMode"] == "awsvpc"
    (c,) = doc["containerDefinitions"]
    assert c["essential"] is True
    assert c["healthCheck"]["command"][:4] == ["CMD", "nc", "-z", "localhost"]
    assert c["logConfiguration"]["logDriver"] == "awslogs"


def test_ecs_validator_is_real():
    from botocore.validate import ParamValidator

    bad = {"family": "x", "containerDefinitions": [{"name": "a", "portMappings": [
        {"containerPort": "1234"}]}]}
    assert ParamValidator().validate(bad, ecs_input_shape()).has_errors()


def test_ecs_matching_engine_as_in_the_guide():
    doc = json.loads((REPO / "deploy/ecs/matching-engine.task-definition.json").read_text())
    assert doc["family"] == "matching-engine"
    assert doc["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
    (c,) = doc["containerDefinitions"]
    assert {(p["containerPort"], p["protocol"]) for p in c["portMappings"]} == {
        (1234, "tcp"), (1235, "udp")}
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env == {"ENGINE_THREADED": "true", "ENGINE_TCP_ENABLED": "true",
                   "ENGINE_UDP_ENABLED": "true", "ENGINE_MCAST_ENABLED": "false"}
    assert c["healthCheck"]["command"] == ["CMD", "nc", "-z", "localhost", "1234"]


def test_ecs_stream_processor_as_in_the_guide():
    doc = json.loads((REPO / "deploy/ecs/stream-processor.task-definition.json").read_text())
    (c,) = doc["containerDefinitions"]
    assert c["name"] == "stream-processor"
    assert c["portMappings"] == [{"containerPort": 9092, "hostPort": 9092, "protocol": "tcp"}]
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env["STREAM_PORT"] == "9092" and env["STREAM_IO_THREADS"] == "4"
    assert c["mountPoints"][0]["sourceVolume"] == "stream-data"
    assert c["mountPoints"][0]["containerPath"] == "/data"
    assert "stream-data" in {v["name"] for v in doc["volumes"]}


def test_manifests_name_the_images_compose_builds():
    """Kubernetes and ECS run the images `docker-compose build` makes (and the Docker suite
    tests), under a registry prefix: same repository names, so a push of the tested images is
    what they deploy."""
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    built = {svc["image"].split(":")[0] for svc in compose.values()}
    named = []
    for f in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d and d["kind"] in ("Deployment", "StatefulSet"):
                named += [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
    for f in sorted((REPO / "deploy" / "ecs").glob("*.json")):
        named += [c["image"] for c in json.loads(f.read_text())["containerDefinitions"]]
    assert len(named) == 4, named
    for image in named:
        repo = image.rsplit("/", 1)[-1].split(":")[0]
        assert repo in built, (image, built)
