# deskie-mm-bot in a container:   docker build -t deskie-mm-bot .
# Run (README, "Operations"): the secrets from an env file, the config mounted read-only over the
# example, the state on a named volume:
#   docker run -d --name deskie-mm-bot --env-file /etc/deskie-mm-bot/env -p 8085:8085 \
#     -v /etc/deskie-mm-bot/bot_config.yaml:/etc/deskie-mm-bot/bot_config.yaml:ro \
#     -v deskie-mm-bot-state:/var/lib/deskie-mm-bot deskie-mm-bot

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md bot_config.example.yaml ./
COPY deskie_mm_bot ./deskie_mm_bot
RUN python -m venv /opt/deskie-mm-bot \
    && /opt/deskie-mm-bot/bin/pip install --no-cache-dir .

FROM python:3.12-slim-bookworm
COPY --from=build /opt/deskie-mm-bot /opt/deskie-mm-bot
ENV PATH=/opt/deskie-mm-bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DESKIE_MM_BOT_HEALTH_URL=http://127.0.0.1:8085/healthz

# A fixed uid, so that a host folder mounted as the state can be given to it (chown 10001).
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /var/lib/deskie-mm-bot \
        --shell /usr/sbin/nologin deskie \
    && mkdir -p /var/lib/deskie-mm-bot /etc/deskie-mm-bot \
    && chown deskie:deskie /var/lib/deskie-mm-bot \
    && chmod 0700 /var/lib/deskie-mm-bot

# The example config, changed only where a container differs: listen on every interface (the port is
# published) and keep the state on the volume. The grep fails the build if the example's lines moved.
RUN deskie-mm-bot init -c /etc/deskie-mm-bot/bot_config.yaml \
    && sed -i -e 's|^  listen: 127\.0\.0\.1:8085$|  listen: 0.0.0.0:8085|' \
        -e 's|^  path: deskie-mm-bot\.sqlite3$|  path: /var/lib/deskie-mm-bot/deskie-mm-bot.sqlite3|' \
        /etc/deskie-mm-bot/bot_config.yaml \
    && grep -q '^  listen: 0\.0\.0\.0:8085$' /etc/deskie-mm-bot/bot_config.yaml \
    && grep -q '^  path: /var/lib/deskie-mm-bot/deskie-mm-bot\.sqlite3$' /etc/deskie-mm-bot/bot_config.yaml

USER 10001:10001
WORKDIR /var/lib/deskie-mm-bot
VOLUME ["/var/lib/deskie-mm-bot"]
EXPOSE 8085

# 200 from /healthz: both connections up. Python, not curl: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(os.environ['DESKIE_MM_BOT_HEALTH_URL'], timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["deskie-mm-bot"]
CMD ["run", "-c", "/etc/deskie-mm-bot/bot_config.yaml"]
