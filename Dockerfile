# dvc-gateway daemon image. Build: docker build -t dvc-gateway . ; run with a mounted settings file:
#   docker run -v /etc/dvcgw:/etc/dvcgw -v dvcgw-data:/var/lib/dvcgw -p 8080:8080 dvc-gateway
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/dvcgw dvcgw
WORKDIR /opt/dvc-gateway
COPY pyproject.toml README.md ./
COPY core core
COPY gateway gateway
COPY adapters adapters
COPY signing signing
COPY queues queues
COPY config config
COPY monitoring monitoring
RUN pip install --no-cache-dir .
USER dvcgw
ENV DVCGW_CONFIG=/etc/dvcgw/dvcgw.toml DVCGW_STORAGE__PATH=/var/lib/dvcgw/dvcgw.sqlite3
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["dvcgw", "serve"]
