# syntax=docker/dockerfile:1
# The tracking service: a Go binary on distroless (with glibc), run as non-root.
# Build context: the repository root (the go.work workspace needs every
# module it lists), e.g. from deployments/docker-compose.yml or
#   docker build -f deployments/docker/tracking.Dockerfile .
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# cgo: the direct reads of projects' SQLite databases use SQLite's C
# library (services/tracking/adapters/mlflowdb/sqlite_cgo.go), several
# times faster than the pure-Go build on big projects. The golang image
# has gcc; the final image has the matching glibc (both Debian 12).
ENV CGO_ENABLED=1
COPY . .
# Cache mounts keep modules and the build cache between builds; .git is
# not in the context (see tracking.Dockerfile.dockerignore), hence -buildvcs=false.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -buildvcs=false -trimpath -ldflags="-s -w" -o /out/ \
        ./services/tracking/cmd/tracking ./deployments/cmd/healthcheck

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# The tracking service keeps no state and listens on no port: it answers
# over NATS (MLPANEL_NATS_URL).
# 65532 is distroless's "nonroot" user.
USER 65532:65532
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "nats", "tracking"]
ENTRYPOINT ["/usr/local/bin/tracking"]
