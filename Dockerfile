# dvc-gateway daemon image (issue 18). Build from the repository root:
#   docker build -t dvc-gateway .
# Run (settings file and secrets mounted read-only, the data volume writable, the rest read-only):
#   docker run --read-only --tmpfs /tmp -v ./deploy/dvcgw.toml:/etc/dvcgw/dvcgw.toml:ro \
#     -v dvcgw-data:/var/lib/dvcgw -p 8080:8080 dvc-gateway
# deploy/compose.yml and deploy/compose.single.yml run it that way. tests/ship/test_dockerfile.py
# lints this file with hadolint and checks the rules below; no Docker engine builds it in the tests.

# bookworm pinned: requirements.lock's hashes are of the wheels pip picks for CPython 3.11 on glibc x86_64
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a venv with the locked dependency set (hash-checked), then the project's own wheel ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/dvcgw \
    && /opt/dvcgw/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY core core
COPY gateway gateway
COPY adapters adapters
COPY signing signing
COPY queues queues
COPY config config
COPY monitoring monitoring
# --no-deps: everything it needs is already in from the lock; the build backend comes from PyPI here
RUN /opt/dvcgw/bin/pip install --no-cache-dir --no-deps . \
    && /opt/dvcgw/bin/python -m compileall -q /opt/dvcgw/lib \
    && /opt/dvcgw/bin/dvcgw --version \
    && /opt/dvcgw/bin/python -c "import signing.engine as e; assert e.FONT_PATH.is_file(), e.FONT_PATH"

# --- runtime: the venv only, a non-root user, every write under the /var/lib/dvcgw volume ---
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="dvc-gateway" \
      org.opencontainers.image.description="DVCQG interoperability gateway and sync daemon"
RUN groupadd --system --gid 10001 dvcgw \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dvcgw --no-create-home \
       --shell /usr/sbin/nologin dvcgw \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/dvcgw \
    && install -d -m 0755 /etc/dvcgw
COPY --from=build /opt/dvcgw /opt/dvcgw
# Every SQLite file (store, jobs, payments, kpi, catalogue, inbound, codes, certification) defaults
# to the folder of [storage] path, so pointing it at the volume keeps every write there; Python
# writes no bytecode (compiled above) and temporary files go to a tmpfs on /tmp (--tmpfs /tmp).
ENV PATH=/opt/dvcgw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/dvcgw \
    DVCGW_CONFIG=/etc/dvcgw/dvcgw.toml \
    DVCGW_STORAGE__PATH=/var/lib/dvcgw/dvcgw.sqlite3 \
    DVCGW_SERVER__LISTEN=0.0.0.0:8080
VOLUME ["/var/lib/dvcgw"]
WORKDIR /var/lib/dvcgw
USER 10001:10001
EXPOSE 8080
# liveness on /healthz with the image's own Python (no curl in a slim image); the port follows
# DVCGW_SERVER__LISTEN
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('DVCGW_SERVER__LISTEN', ':8080').rsplit(':', 1)[1]; u.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
# SIGTERM drains: /readyz 503 for [server] drain_delay, then requests and portal calls in flight get
# [server] shutdown_grace each; give the container at least drain_delay + 2 x shutdown_grace
# (docker stop -t 30, compose stop_grace_period)
STOPSIGNAL SIGTERM
CMD ["dvcgw", "serve"]
