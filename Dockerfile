# The control plane (and the demo upstreams) as one image.
#
# `docker run xds-server` starts a working control plane that opens:
#   0.0.0.0:18000  xDS (ADS) for Envoys, and their stats sinks: publish it
#   0.0.0.0:9102   /metrics, /healthz and /readyz: publish it to your scraper
#   127.0.0.1:18001 the operator API, inside the container only: run
#                  `docker exec CONTAINER xdsctl ...`. To open it beyond the container,
#                  give it TLS and tokens (docs/security.md) and override the command;
#                  it refuses to listen beyond loopback without them (or --insecure).
# The state file is /data/xds-state.db (a volume: keep it).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY xds_server ./xds_server
RUN pip install --no-cache-dir . && mkdir -p /data
VOLUME /data
EXPOSE 18000 9102
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9102/readyz', timeout=2)"
ENTRYPOINT ["xdsctl"]
CMD ["serve", "--state", "/data/xds-state.db", "--xds-listen", "0.0.0.0:18000", "--api-listen", "127.0.0.1:18001", "--metrics-listen", "0.0.0.0:9102"]
