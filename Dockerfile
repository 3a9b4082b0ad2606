# One image for every service of docker-compose.yml: code server, webservers, daemon, Celery
# workers and the proxies (docs/deploy.md). Dependencies come from the lock file, so a build
# installs exactly what the tests ran with.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/dagster/app

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY dp_assets ./dp_assets
COPY dp_resources ./dp_resources
COPY dp_io ./dp_io
COPY dp_sensors ./dp_sensors
COPY dp_instance ./dp_instance
COPY dp_proxy ./dp_proxy
COPY dp_deploy ./dp_deploy
RUN pip install --no-deps .

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
