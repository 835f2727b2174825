# School Social Monitor: slim Python, CPU-only torch, non-root, model cache on a volume.
FROM python:3.11-slim AS app

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MONITOR_CONFIG=/etc/monitor/monitor.yaml \
    MONITOR_DATA_DIR=/var/lib/monitor/data \
    HF_HOME=/var/lib/monitor/models/huggingface \
    TORCH_HOME=/var/lib/monitor/models/torch

WORKDIR /opt/monitor

# DejaVu fonts: the evidence pack's PDF prints non-Latin comments as written.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core && \
    rm -rf /var/lib/apt/lists/*

# CPU build of torch first (pinned): the default index would pull a multi-gigabyte CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY connectors ./connectors
COPY config ./config
RUN pip install ".[scale]" && \
    useradd --system --uid 10001 --home-dir /var/lib/monitor --create-home monitor && \
    mkdir -p /var/lib/monitor/data /var/lib/monitor/models /etc/monitor && \
    chown -R monitor:monitor /var/lib/monitor

USER monitor
VOLUME ["/var/lib/monitor/models", "/var/lib/monitor/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"

# Migrations on start, then worker and web in one process.
CMD ["sh", "-c", "monitor db upgrade && exec monitor run --host 0.0.0.0 --port 8080"]
