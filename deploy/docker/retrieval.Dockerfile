# The retrieval service: catalog ingest, audio features, text and audio search.
#   docker build -f deploy/docker/retrieval.Dockerfile -t cadenza-retrieval:TAG .
# Needs models/text/ in the build context first (`make text-model`: the ONNX export of
# all-MiniLM-L6-v2 and its tokenizer). Text search runs on onnxruntime + tokenizers, so
# the image has no torch and no sentence-transformers (the train extra is not installed).

FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY deploy/docker/requirements/retrieval.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip check

FROM python:3.11.14-slim-bookworm
RUN groupadd --system --gid 10001 cadenza \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/cadenza \
       --shell /usr/sbin/nologin cadenza \
    && install -d -o 10001 -g 10001 /var/lib/cadenza/retrieval
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY cadenza/ cadenza/
COPY services/__init__.py services/
COPY services/retrieval/ services/retrieval/
COPY models/text/ models/text/
RUN python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/cadenza \
    CADENZA_RETRIEVAL_HOST=0.0.0.0 \
    CADENZA_RETRIEVAL_TEXT_MODEL_DIR=/app/models/text
# librosa's numba kernels cache compiled code and fail at import when they cannot: with
# a read-only root filesystem, /tmp must be a writable volume (an emptyDir).
ENV NUMBA_CACHE_DIR=/tmp/numba-cache
# The embedded Qdrant store (used when QDRANT_URL is empty): mount a volume here.
ENV CADENZA_RETRIEVAL_DATA_DIR=/var/lib/cadenza/retrieval
EXPOSE 50052 9092
USER 10001:10001
CMD ["python", "-m", "services.retrieval"]
