# The recommend service: events, collaborative models, recommendations.
#   docker build -f deploy/docker/recommend.Dockerfile -t cadenza-recommend:TAG .
# Its training (implicit ALS on scipy) runs in process: no torch here either.

FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY deploy/docker/requirements/recommend.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip check

FROM python:3.11.14-slim-bookworm
RUN groupadd --system --gid 10001 cadenza \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/cadenza \
       --shell /usr/sbin/nologin cadenza \
    && install -d -o 10001 -g 10001 /var/lib/cadenza/recommend
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY cadenza/ cadenza/
COPY services/__init__.py services/
COPY services/recommend/ services/recommend/
RUN python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/cadenza \
    CADENZA_RECOMMEND_HOST=0.0.0.0
# The event log and, without QDRANT_URL, the embedded model store: mount a volume here.
ENV CADENZA_RECOMMEND_DATA_DIR=/var/lib/cadenza/recommend
EXPOSE 50053 9093
USER 10001:10001
CMD ["python", "-m", "services.recommend"]
