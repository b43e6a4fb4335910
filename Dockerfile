# One container: the gateway, non-root, its SQLite database on a volume (or, with a config
# naming [storage] backend = "postgresql", a shared PostgreSQL database: no volume needed).
# Python 3.11: the version CI runs the suite on.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_CONFIG=/etc/fulfillment-gateway/config.toml

WORKDIR /app
# Dependencies first, in their own layer, exactly as locked (with hashes; CI installs
# requirements-test.lock, its superset, the same way): a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
COPY storage ./storage
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/fulfillment-gateway gateway \
    && mkdir -p /var/lib/fulfillment-gateway /etc/fulfillment-gateway \
    && chown gateway /var/lib/fulfillment-gateway

# The real ShipStation API, the database on the volume; every secret from the environment
# (see the file). Mount your own config at $GATEWAY_CONFIG for anything else.
COPY config.container.toml /etc/fulfillment-gateway/config.toml

USER gateway
VOLUME ["/var/lib/fulfillment-gateway"]
EXPOSE 8080
# /readyz on the port the config names (storage writable, worker, outbox and scheduler up).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["fulfillment-gateway", "healthcheck"]
ENTRYPOINT ["fulfillment-gateway"]
CMD ["serve"]
