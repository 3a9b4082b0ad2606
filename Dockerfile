# One image for every service of docker-compose.yml: code server, webservers, daemon, Celery
# workers and the proxies (docs/deploy.md). Runtime dependencies come from
# requirements-runtime.lock (the versions the tests ran with, without the test and bench tools),
# each checked against its hash.
#
# The base image is pinned by digest: the tag alone moves with every rebuild upstream. Digest of
# python:3.11-slim-bookworm (the multi-platform index, Python 3.11.16 on Debian 12) as recorded
# by Docker's official-images record, github.com/docker-library/repo-info,
# repos/python/remote/3.11-slim-bookworm.md. To move it: docker buildx imagetools inspect
# python:3.11-slim-bookworm, and replace the digest.
#
# The designer's client (designer/: TypeScript, React, Vite) is built in a first stage of the same
# pinned image with Debian's Node.js 18 and npm (Vite 6 and every locked package support Node 18):
# no second base image to pin, and neither Node nor node_modules in the final image. npm ci
# installs exactly package-lock.json, each package checked against its integrity hash.
FROM python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02 AS client
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /client
COPY designer/package.json designer/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY designer/index.html designer/tsconfig.json designer/vite.config.ts ./
COPY designer/src ./src
RUN npm run build

FROM python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/dagster/app

# Dependencies first: this layer is rebuilt only when the lock file changes. The lock names the
# whole dependency closure, so pip installs exactly it (--no-deps) and `pip check` proves it whole.
COPY requirements-runtime.lock ./
RUN pip install --no-deps --require-hashes -r requirements-runtime.lock && pip check

COPY pyproject.toml README.md ./
COPY dp_assets ./dp_assets
COPY dp_resources ./dp_resources
COPY dp_io ./dp_io
COPY dp_sensors ./dp_sensors
COPY dp_instance ./dp_instance
COPY dp_proxy ./dp_proxy
COPY dp_deploy ./dp_deploy
COPY dp_settings ./dp_settings
COPY dp_designer ./dp_designer
COPY dp_auth ./dp_auth
# The base image's own setuptools builds the package (no build environment fetched from the index).
RUN pip install --no-deps --no-build-isolation .

# The built client, served by `dp designer --client /opt/dagster/app/designer/dist`.
COPY --from=client /client/dist ./designer/dist

# The production instance and the deployment files (workspace, Celery worker settings), and the
# example flows imported into the flow store on load (DP_FLOWS_DIR).
COPY dagster.yaml /opt/dagster/home/dagster.yaml
COPY workspace.yaml ./
COPY deploy ./deploy
COPY flows ./flows

# An unprivileged user; the folders that compose mounts volumes on belong to it, so the volumes
# are created writable for it.
RUN useradd --system --uid 10001 --home-dir /opt/dagster --shell /usr/sbin/nologin dagster \
    && mkdir -p /opt/dagster/home/storage /data/outputs /data/files /data/dp \
    && chown -R dagster /opt/dagster/home /data
USER dagster

EXPOSE 3000 4000 8080
CMD ["dagster", "code-server", "start", "-m", "dp_assets.definitions", "--location-name", "dp_platform", "-h", "0.0.0.0", "-p", "4000"]
