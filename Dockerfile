# Ledger Hub server (and adapter) image.
#   docker build -t ledger-hub:dev .
#   docker run --rm -p 8000:8000 ledger-hub:dev            # `hub serve`, embedded SQLite
#   docker run --rm ledger-hub:dev migrate                  # any other `hub` subcommand
# Kubernetes runs it with a read-only root filesystem; see k8s/README.md.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---- build: a virtualenv with the hub and its runtime dependencies -------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for dependencies that have no wheel for the target platform; it never leaves
# this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject alone, so a source change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" \
    > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

COPY README.md ./
COPY hub ./hub
COPY schema ./schema
COPY adapters ./adapters
COPY common ./common
RUN pip install --no-deps . \
 && hub --help > /dev/null

# ---- runtime: the interpreter, the virtualenv, an unprivileged user; no build tools -------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ledger-hub" \
      org.opencontainers.image.description="Ledger Hub: documents anchored in one RFC 9162 Merkle ledger" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_DATA_DIR=/var/lib/hub

# Numeric ids so Kubernetes can prove runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hub \
            --no-create-home --shell /usr/sbin/nologin hub \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/hub

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/hub
EXPOSE 8000

# The slim image has no curl; the interpreter does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["hub"]
# `::` is every address of both IP families (hub.listen).
CMD ["serve", "--host", "::", "--port", "8000"]
