# scimsvc: one image for the web front end, the worker and the one-off migration.
#   docker build -t scimsvc .
#   docker run --rm -e SCIMSVC_DATABASE_URL=... -e SCIMSVC_REDIS_URL=... scimsvc scimsvc migrate
#   docker run --rm -p 8080:8080 -e ... scimsvc                      # web (the default command)
#   docker run --rm -e ... scimsvc scimsvc worker                    # worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SCIMSVC_HOST=0.0.0.0 \
    SCIMSVC_PORT=8080

RUN useradd --system --create-home --home-dir /home/scimsvc --uid 10001 scimsvc

WORKDIR /src
# README.md is the package's readme in pyproject.toml; the SQL migrations ship as package data
# (scimsvc/store/migrations/*.sql), so a regular, non-editable install carries them.
COPY pyproject.toml README.md ./
COPY scimsvc ./scimsvc
COPY worker ./worker
COPY schemas ./schemas
# The check runs from / so that it imports the installed package, not the source tree.
RUN pip install --no-cache-dir . \
    && cd / && python -c "from scimsvc.store.migrations import available_migrations as m; assert m(), 'no SQL migrations installed'"

WORKDIR /home/scimsvc
USER scimsvc

EXPOSE 8080
# No HEALTHCHECK here: the same image runs the worker and `migrate`, which listen on no port.
# compose.yaml gives the web service its own TCP check.
CMD ["scimsvc", "serve", "--host", "0.0.0.0", "--port", "8080"]
