# Watchkeeper in a container: `watchkeeper serve` by default; `watchkeeper worker` and
# `watchkeeper camera-worker` from the same image (compose.yaml, docs/deploy.md).
#   docker build -t watchkeeper .                                  CPU image
#   docker build --build-arg ONNX_DEVICE=cuda -t watchkeeper:gpu .  onnxruntime on CUDA (needs --gpus)

FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/watchkeeper
ENV PATH=/opt/watchkeeper/bin:$PATH
WORKDIR /src

# The pinned dependencies first, in a layer of their own: a code change does not reinstall them. Then,
# as the Makefile does, the packages whose declared requirements would pull torch/jax or clash on numpy.
COPY pyproject.toml requirements-nodeps.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt

# cpu, or cuda: onnxruntime-gpu with CUDA and cuDNN from NVIDIA's wheels (no CUDA base image needed; the
# host needs a driver recent enough for that CUDA and the NVIDIA Container Toolkit).
ARG ONNX_DEVICE=cpu
RUN if [ "$ONNX_DEVICE" = cuda ]; then \
        pip uninstall -y onnxruntime \
        && pip install "onnxruntime-gpu[cuda,cudnn]==1.31.1"; \
    elif [ "$ONNX_DEVICE" != cpu ]; then echo "ONNX_DEVICE must be cpu or cuda" >&2; exit 1; fi

COPY README.md LICENSE ./
COPY src ./src
# The runtime install, not the Makefile's editable one with the dev extra.
RUN pip install --no-deps .
COPY deploy/healthcheck.py /opt/watchkeeper/bin/watchkeeper-healthcheck
RUN chmod 0755 /opt/watchkeeper/bin/watchkeeper-healthcheck


FROM python:3.11-slim-bookworm

# From scripts/system-deps.sh, what the product itself needs: Pango and a font for PDF reports
# (WeasyPrint). Not the demo's and tests' tools (espeak-ng, sox, freedoom, Chromium, GStreamer).
# OpenCV's wheels need libGL and GLib, which the slim image lacks; tini reaps children and passes
# SIGTERM on, so each service shuts down gracefully. Unpinned: Debian's stable point releases replace
# the exact versions, and their security updates should come in with each build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
        libgl1 libglib2.0-0 tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/watchkeeper watchkeeper \
    && mkdir /data && chown watchkeeper:watchkeeper /data

COPY --from=build /opt/watchkeeper /opt/watchkeeper

ARG ONNX_DEVICE=cpu
ENV PATH=/opt/watchkeeper/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WATCHKEEPER_DATA_DIR=/data \
    WATCHKEEPER_MODELS__ONNX_DEVICE=$ONNX_DEVICE

# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /home/watchkeeper
# Database (SQLite unless database_url says otherwise), uploads, evidence, recordings, caches.
VOLUME /data
EXPOSE 5000

# GET /health answers 200 while the database answers, 503 when it does not; the first start migrates it.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["watchkeeper-healthcheck", "api"]

ENTRYPOINT ["tini", "--"]
CMD ["watchkeeper", "serve", "--host", "0.0.0.0"]
