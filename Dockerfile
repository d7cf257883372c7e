# syntax=docker/dockerfile:1
# curvine-fuse image for Fluid ThinRuntime (docs/FLUID.md).
#
#   docker build -t curvine-fuse:dev .
#
# The container runs `curvine-fuse fluid-thin-runtime`: it reads Fluid's config.json,
# writes the Curvine TOML and execs the FUSE daemon in the foreground.

# Build and runtime share Ubuntu 24.04 (noble): the binaries link against the build
# image's glibc, and a runtime base older than the builder fails at start with
# "GLIBC_2.xx not found". 6.3 is the toolchain the project is developed with.
ARG SWIFT_IMAGE=swift:6.3-noble
ARG RUNTIME_IMAGE=ubuntu:24.04

# ---------------------------------------------------------------- build
FROM ${SWIFT_IMAGE} AS build

# Headers and pkg-config files for the CFuse3/CNuma system-library targets.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libfuse3-dev libnuma-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Dependencies first, so a source change does not refetch them.
# (Package.resolved is optional: it is not committed.)
COPY Package.swift Package.resolve[d] ./
RUN swift package resolve
COPY . .

# --static-swift-stdlib links the Swift runtime and Foundation into each binary, so the
# runtime image needs no Swift toolchain; only libc, libstdc++, libfuse3 and libnuma
# stay dynamic. Stripping drops the symbol tables (about a third of the size).
RUN set -eu; \
    for product in curvine-fuse curvine-cluster cv; do \
        swift build -c release --static-swift-stdlib --product "$product"; \
    done; \
    bin="$(swift build -c release --show-bin-path)"; \
    mkdir -p /out; \
    for product in curvine-fuse curvine-cluster cv; do \
        install -m 0755 "$bin/$product" "/out/$product"; \
        strip "/out/$product"; \
    done

# ---------------------------------------------------------------- runtime
FROM ${RUNTIME_IMAGE}

# fuse3: libfuse3 and fusermount3; libnuma1: NUMA pinning of I/O threads;
# ca-certificates: TLS to anything the client may reach. umount/sh (preStop) are in the base.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        fuse3 libnuma1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /out/curvine-fuse /out/curvine-cluster /out/cv /usr/local/bin/

# Upstream's layout: the TOML goes to $CURVINE_HOME/conf/curvine-cluster.toml, logs to
# $CURVINE_HOME/logs (both created again at start, so a read-only layer is fine).
ENV CURVINE_HOME=/app/curvine
RUN mkdir -p /app/curvine/conf /app/curvine/logs /tmp/curvine/meta

# Fluid sends SIGTERM after the preStop hook; the daemon unmounts and exits 0 on it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/curvine-fuse", "fluid-thin-runtime"]
