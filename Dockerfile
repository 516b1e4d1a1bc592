# The control plane (and the demo upstreams) as one image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY xds_server ./xds_server
RUN pip install --no-cache-dir . && mkdir -p /data
VOLUME /data
EXPOSE 18000 18001
ENTRYPOINT ["xdsctl"]
CMD ["serve", "--state", "/data/xds-state.db", "--api-listen", "0.0.0.0:18001", "--xds-listen", "0.0.0.0:18000"]
