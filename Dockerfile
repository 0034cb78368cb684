# syntax=docker/dockerfile:1
# Conduit GraphQL: uvicorn serving the Starlette app; migrations run before the server starts.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY graph ./graph
COPY db ./db
COPY auth ./auth
RUN python -m venv /opt/conduit && /opt/conduit/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/conduit/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONDUIT_DATABASE_URL=sqlite:////data/conduit.db \
    CONDUIT_JWT_SECRET_FILE=/data/.conduit-secret
RUN useradd --system --uid 10001 --home-dir /data --create-home conduit
COPY --from=build /opt/conduit /opt/conduit
USER conduit
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["sh", "-c", "conduit db upgrade && exec uvicorn graph.app:create_app --factory --host 0.0.0.0 --port 8000 --proxy-headers --timeout-graceful-shutdown 10"]
