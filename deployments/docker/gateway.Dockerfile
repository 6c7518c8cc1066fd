# syntax=docker/dockerfile:1
# The gateway service: a static Go binary on distroless, run as non-root.
# Build context: the repository root (the go.work workspace needs every
# module it lists), e.g. from deployments/docker-compose.yml or
#   docker build -f deployments/docker/gateway.Dockerfile .
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Static binaries: the final image has no libc.
ENV CGO_ENABLED=0
COPY . .
# Cache mounts keep modules and the build cache between builds; .git is
# not in the context (see gateway.Dockerfile.dockerignore), hence -buildvcs=false.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -buildvcs=false -trimpath -ldflags="-s -w" -o /out/ \
        ./services/gateway/cmd/gateway ./deployments/cmd/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# Inside a container the gateway must listen on every interface.
ENV MLPANEL_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
# 65532 is distroless's "nonroot" user.
USER 65532:65532
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
