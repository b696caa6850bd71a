# psmon production image: the `psmon` CLI (worker, sink, migrate, simulate, dashboards ...).
# Built without the `chdb` and `dev` extras: production talks to a ClickHouse server over HTTP,
# and the embedded engine (~500 MB) and test tools stay out of the image.

# -- build: wheels for psmon and its pinned dependencies -------------------------------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY psmon ./psmon
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
# the checkpoint directory exists in the image, owned by psmon, so a named volume mounted there
# starts writable by it (docker copies the image's ownership into a new volume)
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/psmon psmon \
    && install -d -o psmon -g psmon /var/lib/psmon/checkpoints
COPY --from=build /wheels /wheels
# --no-index: only the wheels built above, so the image has exactly the pinned set
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/psmon-*.whl \
    && rm -rf /wheels
USER 10001
WORKDIR /var/lib/psmon
ENV PYTHONUNBUFFERED=1 \
    PSMON_DATA_DIR=/var/lib/psmon \
    PSMON_METRICS_HOST=0.0.0.0 \
    PSMON_METRICS_PORT=9108
EXPOSE 9108
ENTRYPOINT ["psmon"]
CMD ["--help"]
