# The generate service: symbolic music from the cadenza-poly model, rendered to audio.
#   docker build -f deploy/docker/generate.Dockerfile -t cadenza-generate:TAG .
# Inference runs on onnxruntime in process (or on Triton with
# CADENZA_GENERATE_BACKEND=triton); the training code and torch stay out of the image.

FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY deploy/docker/requirements/generate.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip check

FROM python:3.11.14-slim-bookworm
# Audio rendering (services/generate/music/synth.py) loads libfluidsynth through ctypes and a General
# MIDI soundfont: TimGM6mb (6 MB), the one tools/system-deps.sh installs. Versions are
# bookworm's; the fluidsynth command-line tool is not needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libfluidsynth3=2.3.1-2 timgm6mb-soundfont=1.3-5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cadenza \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/cadenza \
       --shell /usr/sbin/nologin cadenza
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY cadenza/ cadenza/
COPY services/__init__.py services/
COPY services/generate/ services/generate/
# The served model: model.json, model.onnx and the originality index of its corpus.
COPY models/generate/cadenza-poly/ models/generate/cadenza-poly/
# The neural synthesiser: model.json, model.onnx (3 MB) and its learned reverb.
COPY models/generate/cadenza-ddsp/ models/generate/cadenza-ddsp/
# The image model (cover motifs): model.json and model.onnx (29 MB); its prompts are read
# by the MiniLM sentence encoder, the same export retrieval serves (make text-model).
COPY models/generate/cadenza-motif/ models/generate/cadenza-motif/
COPY models/text/ models/text/
# The text LLM, converted by `make text-llm` (which `make images` runs first): 540 MB.
COPY models/generate/smollm2-135m-instruct/ models/generate/smollm2-135m-instruct/
RUN python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/cadenza \
    CADENZA_GENERATE_HOST=0.0.0.0 \
    CADENZA_GENERATE_MODELS_DIR=/app/models/generate \
    CADENZA_GENERATE_TEXT_MODEL_DIR=/app/models/text
EXPOSE 50054 9094
USER 10001:10001
CMD ["python", "-m", "services.generate"]
