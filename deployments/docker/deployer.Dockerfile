# syntax=docker/dockerfile:1
# The deployer service: a static Go binary plus Python with the pinned MLflow
# (python/requirements.txt), which runs `mlflow models serve` per local deployment. Runs as the
# non-root user mlpanel (uid 10001), which owns the workspace MLPANEL_HOME.
# Build context: the repository root (the go.work workspace needs every
# module it lists), e.g. from deployments/docker-compose.yml or
#   docker build -f deployments/docker/deployer.Dockerfile .
ARG GO_VERSION=1.26
# The same minor Python as the development .venv (make venv).
ARG PYTHON_VERSION=3.11

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -buildvcs=false -trimpath -ldflags="-s -w" -o /out/ \
        ./services/deployer/cmd/deployer ./deployments/cmd/healthcheck

# The virtualenv is built in its own stage so pip, its cache and any build
# tools stay out of the final image.
FROM python:${PYTHON_VERSION}-slim-bookworm AS venv
RUN python -m venv /opt/venv
COPY python/requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --disable-pip-version-check -r /tmp/requirements.txt

FROM python:${PYTHON_VERSION}-slim-bookworm
# A fixed uid/gid, so the projects and deployer containers (same uid) can
# both write the shared workspace volume. A fresh named volume takes the
# ownership of /var/lib/mlpanel from the image.
RUN groupadd --system --gid 10001 mlpanel \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mlpanel \
        --shell /usr/sbin/nologin mlpanel \
    && install -d -o 10001 -g 10001 /var/lib/mlpanel
COPY --from=venv /opt/venv /opt/venv
COPY --from=build /out/ /usr/local/bin/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GIT_PYTHON_REFRESH=quiet \
    MLPANEL_HOME=/var/lib/mlpanel \
    MLPANEL_MLFLOW=/opt/venv/bin/mlflow
WORKDIR /var/lib/mlpanel
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "nats", "deployer"]
ENTRYPOINT ["/usr/local/bin/deployer"]
