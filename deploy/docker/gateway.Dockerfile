# The gateway: the mesh's only public endpoint. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t cadenza-gateway:TAG .
# It forwards calls and needs no numerical libraries: its venv holds gRPC, protobuf,
# prometheus-client and pydantic only (deploy/docker/requirements/gateway.txt).

# Exact tag, the same in both stages so that the venv's interpreter links resolve.
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY deploy/docker/requirements/gateway.txt /tmp/requirements.txt
# --no-deps: the file is the whole closure, pinned; pip check fails the build if not.
RUN /opt/venv/bin/pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip check

FROM python:3.11.14-slim-bookworm
# A fixed UID so that Kubernetes runAsUser/fsGroup and volume ownership can name it.
RUN groupadd --system --gid 10001 cadenza \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/cadenza \
       --shell /usr/sbin/nologin cadenza
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The shared kit and the generated v1 API code (committed, so no protoc at build time).
COPY cadenza/ cadenza/
COPY gateway/ gateway/
# Bytecode now, as root: at run time the code is read-only and owned by root.
RUN python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/cadenza \
    CADENZA_GATEWAY_HOST=0.0.0.0
# gRPC, then Prometheus /metrics (the defaults of gateway/settings.py and tools/devmesh.py).
EXPOSE 50051 9091
USER 10001:10001
# No HEALTHCHECK: Kubernetes ignores it and probes grpc.health.v1 natively.
CMD ["python", "-m", "gateway"]
