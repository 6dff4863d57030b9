# SPDX-License-Identifier: Apache-2.0
"""The shipped deployment files must carry configurations the services accept."""

from __future__ import annotations

from pathlib import Path

import yaml

from lanner.config import read_file
from lanner.up import check_configs

ROOT = Path(__file__).resolve().parents[2]


def test_kubernetes_configmap_is_valid_for_every_service(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "lanner.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ConfigMap", "DaemonSet", "Deployment", "StatefulSet", "Service"} <= kinds
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text(configmap["data"]["lanner.yaml"])
    read_file(cfg)
    check_configs(str(cfg))  # raises ConfigError naming the key on any mistake


def test_daemonset_does_not_run_privileged() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "lanner.yaml").read_text()))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    for container in ds["spec"]["template"]["spec"]["containers"]:
        assert not container.get("securityContext", {}).get("privileged", False)
