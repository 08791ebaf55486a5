# Telemetry service image: `docker compose up --build` (see README, Observability).
# Stage 1 installs the pinned runtime requirements into a virtualenv; stage 2 copies only that venv and the app.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TELEMETRY_DATABASE_URL=sqlite:////data/telemetry.db
# A fixed non-root uid, so the data volume's owner is predictable on the host too.
RUN groupadd --system --gid 10001 telemetry \
    && useradd --system --no-log-init --uid 10001 --gid telemetry --home-dir /app --shell /usr/sbin/nologin telemetry \
    && mkdir -p /data \
    && chown telemetry:telemetry /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app ./app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# python, not curl: the slim image has no curl, and one fewer package is one fewer CVE.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
