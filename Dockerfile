# syntax=docker/dockerfile:1
# Stage 1: the locked dependencies (S3 support included), each file checked against its hash,
# then the package itself on top of them.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-deps .

# Stage 2: the runtime, without compilers or build files, as a non-root user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    LOG_FILE= \
    DATA_DIR=/app/data \
    IMAGE_DIR=/app/data/images \
    THUMBNAIL_DIR=/app/data/thumbnails \
    DATABASE_URL=sqlite+aiosqlite:////app/data/database.db \
    BACKEND_PORT=8000
RUN useradd --create-home --uid 10001 volcimage \
    && mkdir -p /app/data /app/logs \
    && chown -R volcimage:volcimage /app
COPY --from=build /opt/venv /opt/venv
COPY deploy/entrypoint.sh /usr/local/bin/volcimage-entrypoint
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"BACKEND_PORT\",\"8000\")}/api/v1/health',timeout=4)"]
ENTRYPOINT ["volcimage-entrypoint"]
CMD ["serve"]
