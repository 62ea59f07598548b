# syntax=docker/dockerfile:1
# RegimeLab backend (Litestar API + CLI). Build context: repository root.

FROM python:3.12-slim AS builder
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY pyproject.toml uv.lock .python-version ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra semantic --no-install-project

# Then the project itself (editable, so paths like prisma/migrations stay under /app).
COPY README.md ./
COPY engine/ ./engine/
COPY api/ ./api/
COPY prisma/ ./prisma/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra semantic

FROM python:3.12-slim AS runtime
RUN groupadd --system regimelab \
    && useradd --system --gid regimelab --create-home --home-dir /home/regimelab regimelab
WORKDIR /app
COPY --from=builder --chown=regimelab:regimelab /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER regimelab
EXPOSE 8000
CMD ["regimelab", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
