# One container: the gateway, non-root, its SQLite database on a volume (or, with a config
# naming [storage] backend = "postgresql", a shared PostgreSQL database: no volume needed).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GATEWAY_CONFIG=/etc/fulfillment-gateway/config.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
COPY storage ./storage
RUN pip install --disable-pip-version-check . \
    && useradd --system --uid 10001 --home-dir /var/lib/fulfillment-gateway gateway \
    && mkdir -p /var/lib/fulfillment-gateway /etc/fulfillment-gateway \
    && chown gateway /var/lib/fulfillment-gateway

# The image's config listens on all interfaces and keeps the database on the volume;
# mount your own at $GATEWAY_CONFIG to point connectors at real partners.
COPY config.toml /etc/fulfillment-gateway/config.toml
RUN sed -i -e 's|^host = "127.0.0.1"|host = "0.0.0.0"|' \
           -e 's|^path = "data/gateway.sqlite3"|path = "/var/lib/fulfillment-gateway/gateway.sqlite3"|' \
           /etc/fulfillment-gateway/config.toml

USER gateway
VOLUME ["/var/lib/fulfillment-gateway"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["fulfillment-gateway"]
CMD ["serve"]
