# trm-serve: one image for API replicas (`python -m app`) and broker workers
# (`python -m app.worker_main`). CPU by default; for CUDA build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# (the CUDA wheels bring their own CUDA libraries; BASE_IMAGE may stay the slim Python one).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRM_HOST=0.0.0.0 \
    TRM_PORT=8000 \
    TRM_CHECKPOINT_DIR=/srv/trm/checkpoints

WORKDIR /srv/trm

# torch first, from the index that matches the target device, so the project install below
# finds it satisfied instead of pulling the multi-GB CUDA build from PyPI. The version is pinned
# through TORCH_SPEC, which hadolint cannot see.
# hadolint ignore=DL3013
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

# Then every other dependency at the versions CI tested (deploy/constraints.txt, checked
# current by .ci/run), before any code: a code change rebuilds only the layers below.
COPY deploy/constraints.txt ./deploy/constraints.txt
RUN pip install -r deploy/constraints.txt

COPY pyproject.toml README.md ./
COPY trm_core ./trm_core
COPY training ./training
COPY app ./app
# The project itself; its dependencies are all installed above (pip check proves it).
RUN pip install --no-deps . && pip check
# The viewer's in-browser runtime, fetched by pinned hash (python -m app.ort_runtime).
RUN python -m app.ort_runtime

COPY checkpoints ./checkpoints

RUN useradd --system --uid 10001 --home-dir /srv/trm trm
USER 10001

EXPOSE 8000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('TRM_PORT', '8000')}/readyz\", timeout=2)"]

CMD ["python", "-m", "app"]
