# syntax=docker/dockerfile:1
#
# sevrouter container image: one image for every command.
#
#   docker build -t sevrouter:0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run --rm -p 9095:9095 -e REDIS_URL=redis://redis:6379/0 \
#     -e SEVROUTER_WEBHOOK_TOKEN=... sevrouter:0.1.0              # the receiver (default)
#   docker run --rm -e REDIS_URL=... sevrouter:0.1.0 worker       # a worker
#   docker run --rm -v "$PWD/rules:/etc/sevrouter/rules:ro" sevrouter:0.1.0 check
#
# Rules are read from /etc/sevrouter/rules (SEVROUTER_RULES); the image ships the repository's
# rules there, so mount your own directory (or a Kubernetes ConfigMap) over it. The install steps
# live in docker/install.sh, which CI runs outside Docker (tests/deploy/test_dockerfile.py).

# Both stages must use the same base: the virtualenv built in the first links to its Python.
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# Builder: wheels for sevrouter and its dependencies, installed into /opt/sevrouter.
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# Only what the package build reads (.dockerignore keeps caches and local state out).
COPY pyproject.toml README.md ./
COPY router/ router/
COPY rules/ rules/
COPY docker/install.sh docker/install.sh

# Every dependency publishes wheels for linux/amd64 and linux/arm64, so no compiler is needed;
# pip's cache is a BuildKit cache mount and never lands in a layer. The shipped rules are
# checked with the installed command, so a broken install or broken rules fail the build.
RUN --mount=type=cache,target=/root/.cache/pip \
    sh docker/install.sh /src /tmp/wheels /opt/sevrouter /src/rules

# ---------------------------------------------------------------------------------------------
# Runtime: the virtualenv, the rules, a fixed non-root user; no pip, no build tools.
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://example.invalid/sevrouter

LABEL org.opencontainers.image.title="sevrouter" \
      org.opencontainers.image.description="Turns Prometheus Alertmanager and Grafana alert webhooks into deduplicated SEV incidents that page the right person once." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/sevrouter/bin:$PATH \
    SEVROUTER_RULES=/etc/sevrouter/rules \
    SEVROUTER_LOG_FORMAT=json

# Nothing installs packages at run time: drop the base image's pip and setuptools (fewer files,
# fewer scanner findings). UID/GID 10001 is fixed so Kubernetes' runAsNonRoot can verify it and
# volume permissions are predictable.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 sevrouter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sevrouter \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/sevrouter

COPY --from=builder /opt/sevrouter /opt/sevrouter
COPY docker/healthcheck.py /opt/sevrouter/healthcheck.py
# Owned by root and read-only to the service user, like a mounted ConfigMap.
COPY rules/ /etc/sevrouter/rules/

WORKDIR /var/lib/sevrouter
USER 10001:10001
EXPOSE 9095

# `serve` and `run`: GET /healthz on their port; `worker` (no port): healthy while it runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/sevrouter/healthcheck.py"]

# SIGTERM drains: uvicorn finishes in-flight requests (30 s), a worker finishes its job.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sevrouter"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9095"]
