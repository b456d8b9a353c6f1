# Lumina: one image for the web server, the Celery worker/beat and the migrate step.
# Containers always get DATABASE_URL, so the embedded PostgreSQL wheel stays unused.

# --- builder: compilers only live here -------------------------------------------------
# Same base as the runtime so the venv's interpreter symlinks resolve there too.
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Fallback for any dependency that has no wheel for the target platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Requirements first: the dependency layer is reused until requirements.txt changes.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# --- frontend: the console's bundles (npm ci from the lock file, then esbuild) ------------
FROM python:3.11-slim AS frontend
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY frontend/package.json frontend/package-lock.json frontend/
RUN cd frontend && npm ci --no-audit --no-fund --loglevel=error
COPY frontend frontend
RUN cd frontend && node build.mjs

# --- runtime -----------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

# LUMINA_ENV=production makes SECRET_KEY mandatory; DATABASE_URL must point at a
# PostgreSQL server with pgvector available.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LUMINA_ENV=production \
    LUMINA_HOST=0.0.0.0 \
    LUMINA_PORT=8000 \
    LUMINA_DATA_DIR=/app/var \
    LUMINA_LOG_FORMAT=json

RUN groupadd --system --gid 10001 lumina \
    && useradd --system --uid 10001 --gid lumina --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin lumina

WORKDIR /app

COPY --from=builder /opt/venv /opt/venv
COPY manage.py ./
COPY config ./config
COPY lumina ./lumina
COPY --from=frontend /src/lumina/ui/static/console ./lumina/ui/static/console

# Source stays root-owned (read-only to the app) and precompiled, since the app cannot
# write bytecode; only the data dir is writable.
# An empty logging config leaves uvicorn's loggers handler-less, so they propagate to
# Django's structlog JSON handler, like `manage.py serve` (log_config=None).
RUN python -m compileall -q /app/config /app/lumina \
    && mkdir -p /app/var /etc/lumina \
    && chown lumina:lumina /app/var \
    && printf '%s\n' '{"version": 1, "disable_existing_loggers": false}' \
       > /etc/lumina/uvicorn-logging.json

USER 10001:10001

EXPOSE 8000

# /health/live answers whatever the Host header (ProbeMiddleware), so probing by
# address works with any ALLOWED_HOSTS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD python -c \
    'import os, urllib.request as u; u.urlopen(f"http://127.0.0.1:{os.environ.get(\"LUMINA_PORT\", \"8000\")}/health/live", timeout=4)'

# CMD rather than ENTRYPOINT, so the same image runs `manage.py ...` or `celery ...`
# by replacing the command. `exec` keeps uvicorn as PID 1 to receive SIGTERM.
# The access log comes from RequestIdMiddleware (with request ids), not uvicorn.
CMD ["sh", "-c", "exec uvicorn config.asgi:application --host \"$LUMINA_HOST\" --port \"$LUMINA_PORT\" --loop uvloop --http httptools --lifespan on --no-access-log --no-server-header --timeout-keep-alive 75 --proxy-headers --log-config /etc/lumina/uvicorn-logging.json"]
