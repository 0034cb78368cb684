# syntax=docker/dockerfile:1
# Conduit GraphQL: `conduit serve` (uvicorn) on SQLite in /data by default, or on PostgreSQL
# (CONDUIT_DATABASE_URL); migrations run before the server starts. docker-compose.yml runs
# two replicas on PostgreSQL behind nginx.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# the locked dependencies first (each file checked against its hash), in a layer of their own
COPY requirements.lock ./
RUN python -m venv /opt/conduit && /opt/conduit/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY graph ./graph
COPY db ./db
COPY auth ./auth
RUN /opt/conduit/bin/pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/conduit/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONDUIT_DATABASE_URL=sqlite:////data/conduit.db \
    CONDUIT_JWT_SECRET_FILE=/data/.conduit-secret \
    CONDUIT_LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /data --create-home conduit
COPY --from=build /opt/conduit /opt/conduit
USER conduit
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# JSON logs (CONDUIT_LOG_FORMAT, even with a terminal), graceful shutdown (10 s for in-flight requests); add --workers N on PostgreSQL
CMD ["sh", "-c", "conduit db upgrade && exec conduit serve --host 0.0.0.0 --port 8000"]
