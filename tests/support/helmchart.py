"""Helpers for the chart tests: run the real helm and kubectl, validate custom resources against the
prometheus-operator CRDs, and read back the configuration a rendered Deployment gives the monitor."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from monitor.cli import build_parser, settings_from
from monitor.core.settings import Settings
from monitor.surface.logs import wants_console

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "alb-sg-monitor"
BASE = ROOT / "deploy" / "kubernetes"
CRDS = ROOT / "tests" / "crds"
RELEASE = NAMESPACE = "alb-sg-monitor"


def tool(name: str) -> str:
    """A binary on PATH or in .tools/bin (where scripts/get-tools puts helm and kubectl)."""
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".tools" / "bin"))
    assert found, f"{name} is needed: scripts/get-tools installs it into .tools/bin"
    return found


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def template(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict]:
    """`helm template` of the chart with these extra arguments; fails the test on a render error."""
    done = helm("template", release, str(CHART), "--namespace", namespace, *args)
    assert done.returncode == 0, f"helm template {' '.join(args)} failed:\n{done.stderr}"
    return documents(done.stdout)


def kustomize(path: Path) -> list[dict]:
    done = subprocess.run([tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return documents(done.stdout)


def overlay(directory: Path, *components: str) -> Path:
    """An overlay as a user writes it: the base plus some shipped components, referred to relatively."""
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, directory)],
        "components": [os.path.relpath(BASE / "components" / c, directory) for c in components],
    }))
    return directory


def find(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def only(objects: list[dict], kind: str) -> dict:
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objects: list[dict]) -> dict:
    (c,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


# -- custom resources ---------------------------------------------------------------------------

@cache
def crd_schema(kind: str) -> dict:
    """The openAPIV3Schema of the served version of a vendored prometheus-operator CRD."""
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in documents(path.read_text()):
            if crd["spec"]["names"]["kind"] == kind:
                (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
                return {"group": crd["spec"]["group"], "version": version["name"],
                        "schema": version["schema"]["openAPIV3Schema"]}
    raise KeyError(f"no vendored CRD for {kind}")


def _unknown_fields(value, schema: dict, path: str) -> Iterator[str]:
    """Fields the API server would reject with strict field validation: keys a structural schema
    does not declare, where it neither allows additional properties nor preserves unknown ones."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in schema["properties"]:
                yield from _unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from _unknown_fields(item, extra, f"{path}.{key}")
            elif not extra:
                yield f"{path}.{key}: unknown field"
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            yield from _unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{i}]")


def custom_resource_errors(obj: dict) -> list[str]:
    """What the API server would refuse in a ServiceMonitor or PrometheusRule: its group/version,
    the CRD's schema (types, enums, patterns, required fields) and unknown fields."""
    crd = crd_schema(obj["kind"])
    errors = []
    if obj.get("apiVersion") != f"{crd['group']}/{crd['version']}":
        errors.append(f"apiVersion {obj.get('apiVersion')!r} is not {crd['group']}/{crd['version']}")
    validator = jsonschema.Draft4Validator(crd["schema"])
    errors += [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]
    errors += list(_unknown_fields(obj, crd["schema"], obj["kind"]))
    return errors


# -- the monitor's configuration as a pod would see it -------------------------------------------

@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("ALBSG_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("ALBSG_")})
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("ALBSG_")]:
            del os.environ[key]
        os.environ.update(saved)


def container_environment(objects: list[dict]) -> dict[str, str | dict]:
    """The container's environment: its ConfigMaps (envFrom), then its own `env` (which wins)."""
    c = container(objects)
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in find(objects, "ConfigMap")}
    env: dict[str, str | dict] = {}
    for source in c.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"envFrom names ConfigMap {name}, which is not rendered"
        env.update(configmaps[name])
    for var in c.get("env", []):
        env[var["name"]] = var["value"] if "value" in var else var["valueFrom"]
    return env


def effective_settings(objects: list[dict]) -> Settings:
    """The Settings the monitor in this Deployment runs with: its arguments parsed by the real CLI
    parser over its ALBSG_* environment. Two things are resolved as they are in a pod: a region the
    monitor leaves to the AWS SDK comes from AWS_REGION, and `auto` logs are JSON (no terminal)."""
    env = container_environment(objects)
    args = build_parser().parse_args(container(objects)["args"])
    assert args.command == "run"
    with _environment({k: v for k, v in env.items() if isinstance(v, str)}):
        settings = settings_from(args)
    region = settings.region or env.get("AWS_REGION")
    log_format = "console" if wants_console(settings.log_format, io.StringIO()) else "json"
    return Settings(**{**settings.__dict__, "region": region, "log_format": log_format})
