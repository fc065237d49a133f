# syntax=docker/dockerfile:1
#
# wsgate container image.
#   docker build -t wsgate .
#   docker run -p 8080:8080 -p 9090:9090 wsgate
#
# Stage 1 builds the release binary of crates/wsgate ([[bin]] name = "wsgate").
# Stage 2 is debian:bookworm-slim with only that binary, CA certificates (for
# rediss://) and a non-root user. bash (part of the base image) is what the
# HEALTHCHECK uses to ask /readyz, so no curl is installed.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve it.
COPY Cargo.toml Cargo.lock ./
# jemalloc's build-time settings (background purge, decay): see docs/operations.md.
COPY .cargo ./.cargo
COPY crates ./crates
COPY loadtest ./loadtest
# server/demo.rs embeds the demo page and the JS SDK sources (include_bytes!).
COPY clients/js/demo ./clients/js/demo
COPY clients/js/src ./clients/js/src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wsgate --bin wsgate \
    && install -D -m 0755 target/release/wsgate /out/wsgate

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wsgate \
    && useradd --system --uid 10001 --gid wsgate --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin wsgate
COPY --from=build /out/wsgate /usr/local/bin/wsgate
USER 10001:10001
ENV WSGATE_LISTEN=0.0.0.0:8080 \
    WSGATE_ADMIN_LISTEN=0.0.0.0:9090
# 8080: public (/ws, /healthz, /readyz). 9090: admin (/metrics, /api/v1, /healthz, /readyz).
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200'"]
ENTRYPOINT ["/usr/local/bin/wsgate"]
