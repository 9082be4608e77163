"""Fixtures for the deployment tests: the helm binary and the chart rendered per value set."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT, helm_binary

CHART = ROOT / "helm" / "sevrouter"
RELEASE = "sevrouter"
NAMESPACE = "alerting"

# The value sets CI renders: the chart's defaults and each file of the chart's ci/ directory
# (the same files chart-testing would use).
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "sentinel": ("ci/sentinel-values.yaml",),
    "gitops": ("ci/gitops-values.yaml",),
    "full": ("ci/full-values.yaml",),
}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """The manifests `helm template` printed for one value set."""

    name: str
    manifests: list[Manifest]

    def kinds(self) -> set[str]:
        return {m["kind"] for m in self.manifests}

    def all(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, name: str) -> Manifest:
        found = [m for m in self.all(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind}/{name}, got {len(found)}"
        return found[0]

    def deployment(self, component: str) -> Manifest:
        return self.one("Deployment", f"{RELEASE}-{component}")

    def container(self, component: str) -> Manifest:
        containers: list[Manifest] = self.deployment(component)["spec"]["template"]["spec"][
            "containers"
        ]
        assert len(containers) == 1
        return containers[0]


def run_helm(
    helm: Path, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def template_args(
    values_files: Sequence[str] = (), sets: Sequence[str] = (), release: str = RELEASE
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", NAMESPACE]
    for values in values_files:
        args += ["--values", str(CHART / values)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., list[Manifest]]:
    """Renders the chart with extra value files and `--set` assignments."""

    def _render(
        values_files: Sequence[str] = (), sets: Sequence[str] = (), release: str = RELEASE
    ) -> list[Manifest]:
        output = run_helm(helm, *template_args(values_files, sets, release)).stdout
        return [doc for doc in yaml.safe_load_all(output) if doc]

    return _render


@pytest.fixture(scope="session")
def rendered(render: Callable[..., list[Manifest]]) -> dict[str, Rendered]:
    """Every value set of VALUE_SETS, rendered once per session."""
    return {name: Rendered(name, render(files)) for name, files in VALUE_SETS.items()}
