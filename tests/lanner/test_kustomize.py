# SPDX-License-Identifier: Apache-2.0
"""deploy/kubernetes: every Kustomize overlay renders offline with `kubectl kustomize`, and what it renders holds
together: the pipeline's workloads are there, each service's configuration (the ConfigMap it mounts plus its
container's LANNER_* environment) passes that service's own validation, and production has its Redis Cluster,
requests and limits everywhere, disruption budgets and network policies that select real pods. Every hop runs
mutual TLS from the Secret lanner-tls, Subscribe takes tokens from the Secret lanner-tokens on the dispatcher's
public port, and the Secret-making steps documented in base/kustomization.yaml produce what the manifests mount."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.config import output_specs
from lanner.config import load_section
from lanner.up import CONFIG_SCHEMAS

KUSTOMIZE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
TREES = ["base", *sorted(f"overlays/{p.name}" for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())]
# The services' own schemas, as `lanner up` checks them before it starts anything.
SCHEMAS = {s: getattr(importlib.import_module(m), c) for s, (m, c) in CONFIG_SCHEMAS.items()}
WORKLOADS = ("DaemonSet", "Deployment", "StatefulSet", "Job")
PUBLIC_PORT = 7705
TLS_KEYS = ["ca.crt", "pipeline.crt", "pipeline.key"]

_rendered: dict[str, list[dict[str, Any]]] = {}


def render(tree: str) -> list[dict[str, Any]]:
    if tree not in _rendered:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            if os.environ.get("CI"):
                pytest.fail("kubectl missing: scripts/setup-host.sh installs kubernetes-client")
            pytest.skip("kubectl missing (scripts/setup-host.sh installs kubernetes-client)")
        out = subprocess.run([kubectl, "kustomize", str(KUSTOMIZE / tree)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"kubectl kustomize {tree}: {out.stderr}"
        _rendered[tree] = [d for d in yaml.safe_load_all(out.stdout) if d]
    return _rendered[tree]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def pod_labels(docs: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] in WORKLOADS]


@pytest.mark.parametrize("tree", TREES)
def test_renders_the_pipeline(tree: str) -> None:
    docs = render(tree)
    assert all(d["metadata"].get("namespace") == "lanner" for d in docs if d["kind"] != "Namespace")
    node = find(docs, "DaemonSet", "lanner-node")
    assert [c["name"] for c in pod_spec(node)["containers"]] == ["collector", "enricher", "ruleengine"]
    dispatcher = find(docs, "Deployment", "lanner-dispatcher")
    assert dispatcher["spec"]["replicas"] >= 1
    # Replicas share one dedup secret, or one would not recognise what another already stored.
    env = {e["name"]: e for e in pod_spec(dispatcher)["containers"][0]["env"]}
    assert "secretKeyRef" in env["LANNER_DISPATCHER__DEDUP_SECRET"]["valueFrom"]
    assert find(docs, "StatefulSet", "lanner-redis")
    # Least privilege: capabilities for eBPF, never privileged: true.
    for c in pod_spec(node)["containers"]:
        assert not c.get("securityContext", {}).get("privileged", False), c["name"]


@pytest.mark.parametrize("tree", TREES)
def test_every_service_config_validates(tree: str, tmp_path: Path) -> None:
    docs = render(tree)
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    checked = set()
    for workload in (d for d in docs if d["kind"] in WORKLOADS):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            if not c.get("image", "").startswith("lanner"):
                continue
            service, flag, path = c["args"][:3]
            assert flag == "--config" and service in SCHEMAS, c["args"]
            mount = next(m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
            cm = configmaps[volumes[mount["name"]]["configMap"]["name"]]
            local = tmp_path / f"{workload['metadata']['name']}-{c['name']}.yaml"
            local.write_text(cm["data"][os.path.basename(path)])
            env = {e["name"]: e.get("value", "from-the-downward-api") for e in c.get("env", [])}
            cfg = load_section(service, SCHEMAS[service], str(local), env)
            if service == "dispatcher":
                output_specs(cfg, str(local))
            checked.add(service)
    assert checked == set(SCHEMAS), f"{tree}: services run: {checked}"


def test_dev_runs_one_dispatcher() -> None:
    assert find(render("overlays/dev"), "Deployment", "lanner-dispatcher")["spec"]["replicas"] == 1


def test_production_dispatcher_tier_on_redis_cluster() -> None:
    docs = render("overlays/production")
    assert find(docs, "Deployment", "lanner-dispatcher")["spec"]["replicas"] >= 3
    cluster = find(docs, "StatefulSet", "lanner-redis-cluster")
    assert cluster["spec"]["replicas"] == 6
    assert "--cluster-enabled" in pod_spec(cluster)["containers"][0]["args"]
    assert find(docs, "Job", "lanner-redis-cluster-init")
    config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["lanner.yaml"])
    assert config["dispatcher"]["redis_url"].startswith("redis://lanner-redis-cluster:")
    assert config["dispatcher"]["redis_cluster"] is True


def test_production_limits_budgets_and_policies() -> None:
    docs = render("overlays/production")
    for workload in (d for d in docs if d["kind"] in WORKLOADS):
        for c in pod_spec(workload)["containers"]:
            res = c.get("resources", {})
            assert res.get("requests") and res.get("limits"), f"{workload['metadata']['name']}/{c['name']}"
    labels = pod_labels(docs)

    def selects(selector: dict[str, Any]) -> bool:
        wanted = selector.get("matchLabels", {})
        return any(wanted.items() <= lbl.items() for lbl in labels)

    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert {b["metadata"]["name"] for b in budgets} >= {"lanner-dispatcher", "lanner-redis-cluster"}
    assert all(selects(b["spec"]["selector"]) for b in budgets)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny, "no default-deny ingress policy"
    for p in policies:
        if p in deny:
            continue
        assert selects(p["spec"]["podSelector"]), p["metadata"]["name"]
        for rule in p["spec"]["ingress"]:
            assert rule["ports"], p["metadata"]["name"]
            if [port["port"] for port in rule["ports"]] == [PUBLIC_PORT]:
                # Subscribe clients live in other namespaces; they are admitted by a label, on the public port only.
                assert all(f["podSelector"]["matchLabels"] == {"lanner.io/subscriber": "true"} for f in rule["from"])
                continue
            assert all("podSelector" in f and selects(f["podSelector"]) for f in rule["from"]), p["metadata"]["name"]


def service_configs(docs: list[dict[str, Any]], tmp_path: Path) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(workload, container, validated config) for every Lanner container."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    out = []
    for workload in (d for d in docs if d["kind"] in WORKLOADS):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for c in pod_spec(workload)["containers"]:
            if not c.get("image", "").startswith("lanner"):
                continue
            service, _, path = c["args"][:3]
            mount = next(m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
            local = tmp_path / f"{workload['metadata']['name']}-{c['name']}.yaml"
            local.write_text(configmaps[volumes[mount["name"]]["configMap"]["name"]]["data"][os.path.basename(path)])
            env = {e["name"]: e.get("value", "from-the-downward-api") for e in c.get("env", [])}
            out.append((workload, c, load_section(service, SCHEMAS[service], str(local), env)))
    return out


def secret_mount(workload: dict[str, Any], container: dict[str, Any], path: str) -> dict[str, Any]:
    """The Secret volume mounted (as a directory, read-only) at ``path`` in ``container``."""
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    assert len(mounts) == 1, f"{container['name']}: nothing mounted at {path}"
    assert mounts[0].get("readOnly") and "subPath" not in mounts[0], mounts[0]
    volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mounts[0]["name"])
    return dict(volume["secret"])


@pytest.mark.parametrize("tree", TREES)
def test_every_hop_is_mutual_tls_and_subscribe_takes_tokens(tree: str, tmp_path: Path) -> None:
    docs = render(tree)
    for workload, c, cfg in service_configs(docs, tmp_path):
        where = f"{tree}: {workload['metadata']['name']}/{c['name']}"
        assert cfg.tls_dir == "/etc/lanner/tls", where
        secret = secret_mount(workload, c, cfg.tls_dir)
        assert secret["secretName"] == "lanner-tls", where
        # Only the public material: the CA key never reaches a pod, even if someone puts it in the Secret.
        assert sorted(i["key"] for i in secret["items"]) == TLS_KEYS, where
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in c:
                # The kubelet's grpc probe cannot present a certificate; exec probes carry --tls-dir.
                command = c[probe]["exec"]["command"]
                assert command[command.index("--tls-dir") + 1] == cfg.tls_dir, where
        if c["name"] != "dispatcher":
            continue
        assert cfg.public_bind.endswith(f":{PUBLIC_PORT}") and cfg.public_tls and cfg.tokens_file, where
        tokens = secret_mount(workload, c, os.path.dirname(cfg.tokens_file))
        assert tokens["secretName"] == "lanner-tokens", where
        assert [i["path"] for i in tokens["items"]] == [os.path.basename(cfg.tokens_file)], where
    service = find(docs, "Service", "lanner-dispatcher")
    assert PUBLIC_PORT in [p["port"] for p in service["spec"]["ports"]]


def test_documented_secret_steps_make_what_the_manifests_mount(tmp_path: Path) -> None:
    """Run the steps written in base/kustomization.yaml (kubectl in client dry-run), then lay the Secrets out as
    the kubelet would and start from them: the TLS material loads and the token file parses."""
    import base64
    import sys

    from dispatcher.tokens import TokenBook
    from lanner.pki import PipelineTls

    render("base")  # skips or fails here if kubectl is missing
    text = (KUSTOMIZE / "base" / "kustomization.yaml").read_text()
    steps, current = [], ""
    for line in text.splitlines():
        body = line.removeprefix("#").strip()
        if current or body.startswith(("lanner certs", "lanner tokens", "kubectl -n lanner create secret")):
            current += body.removesuffix("\\") + " "
            if not body.endswith("\\"):
                steps.append(current.strip())
                current = ""
    assert len(steps) == 4, steps
    script = "\n".join(
        [
            "set -e",
            f'lanner() {{ "{sys.executable}" -m lanner.cli "$@"; }}',
            'kubectl() { command kubectl "$@" --dry-run=client -o yaml >> secrets.yaml; echo --- >> secrets.yaml; }',
            *steps,
        ]
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(KUSTOMIZE.parents[1])},
    )
    assert done.returncode == 0, done.stderr
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all((tmp_path / "secrets.yaml").read_text()) if d}
    assert set(secrets) == {"lanner-tls", "lanner-tokens"}
    assert all(s["metadata"]["namespace"] == "lanner" for s in secrets.values())
    docs = render("base")
    for workload, c, cfg in service_configs(docs, tmp_path):
        for path, name in [(cfg.tls_dir, "lanner-tls")] + (
            [(os.path.dirname(cfg.tokens_file), "lanner-tokens")] if c["name"] == "dispatcher" else []
        ):
            volume = secret_mount(workload, c, path)
            mounted = tmp_path / "kubelet" / c["name"] / path.strip("/")
            mounted.mkdir(parents=True, exist_ok=True)
            for item in volume["items"]:
                data = secrets[name]["data"][item["key"]]  # a KeyError here: the Secret lacks a mounted key
                (mounted / item["path"]).write_bytes(base64.b64decode(data))
        PipelineTls.load(str(tmp_path / "kubelet" / c["name"] / cfg.tls_dir.strip("/")))
        if c["name"] == "dispatcher":
            book = TokenBook(str(tmp_path / "kubelet" / c["name"] / cfg.tokens_file.strip("/")))
            assert book.lookup((tmp_path / "admin.token").read_text().strip()) is not None
