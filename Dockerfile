# scimsvc: one image for the web front end, the worker and the one-off migration.
#   docker build -t scimsvc .
#   docker run --rm -e SCIMSVC_DATABASE_URL=... -e SCIMSVC_REDIS_URL=... scimsvc scimsvc migrate
#   docker run --rm -p 8080:8080 -e ... scimsvc                      # web (the default command)
#   docker run --rm -e ... scimsvc scimsvc worker                    # worker
# compose.yaml runs all of it: see the README.

# --- builder: turns the source tree into a wheel; nothing of this stage but the wheel reaches the image.
FROM python:3.11-slim AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# README.md is the package's readme in pyproject.toml; the SQL migrations ship as package data
# (scimsvc/store/migrations/*.sql), so the wheel carries them. requirements.lock only passes through to the
# runtime stage.
COPY pyproject.toml README.md LICENSE requirements.lock ./
COPY scimsvc ./scimsvc
COPY worker ./worker
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: the installed wheel and its locked dependencies, run as a non-root user.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SCIMSVC_HOST=0.0.0.0 \
    SCIMSVC_PORT=8080

RUN groupadd --system --gid 10001 scimsvc \
    && useradd --system --create-home --home-dir /home/scimsvc --uid 10001 --gid 10001 scimsvc

COPY --from=builder /wheels /tmp/wheels
COPY --from=builder /src/requirements.lock /tmp/wheels/
# Dependencies exactly as locked, each file checked against its hash (README.md, Docker Compose: how the
# lock is made), then the wheel alone: a rebuild gets the same dependencies. `pip check`: the lock holds
# every dependency of the wheel. The last check imports the installed package (-P: never one in the
# working folder): the migrations must be in the wheel.
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/wheels/requirements.lock \
    && pip install --no-cache-dir --no-deps /tmp/wheels/scimsvc-*.whl \
    && pip check \
    && rm -rf /tmp/wheels \
    && python -P -c "from scimsvc.store.migrations import available_migrations as m; assert m(), 'no SQL migrations installed'"

WORKDIR /home/scimsvc
USER 10001:10001

EXPOSE 8080
# Liveness of the web role (the default command): /ops/health answers without touching PostgreSQL or
# Redis. python:3.11-slim has no curl, hence Python. The same image runs the worker and `migrate`, which
# serve no HTTP on 8080: compose.yaml overrides this check for the worker (its metrics port) and turns
# it off for `migrate`; with plain `docker run ... scimsvc worker`, pass --no-healthcheck or your own.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ops/health', timeout=2)"]
CMD ["scimsvc", "serve", "--host", "0.0.0.0", "--port", "8080"]
