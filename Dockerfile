# anyner serve in a container: the light install (ONNX Runtime, no torch) with the serve extra.
#   docker build -t anyner .
#   docker run --rm -p 8000:8000 anyner
# Flags after the image name go to `anyner serve` (see docs/deploy.md), e.g.
#   docker run --rm -p 8000:8000 -v "$PWD/key.txt:/run/secrets/anyner_key:ro" anyner \
#       --api-key-file /run/secrets/anyner_key --workers 2
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The light install plus the serve extra, as `pip install 'anyner[serve]'` makes it (the
# built-in model ships inside the package); the sources are not kept in the image.
COPY pyproject.toml README.md /tmp/anyner/
COPY src /tmp/anyner/src
RUN pip install "/tmp/anyner[serve]" \
    && rm -rf /tmp/anyner \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin anyner

# Not root: the server needs to write nothing but the Hub cache (a --model given as a Hub id).
USER anyner
WORKDIR /home/anyner
EXPOSE 8000

# The image has no curl: Python asks /health (open without the API key).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]

# Exec form: anyner is PID 1 and gets the SIGTERM of `docker stop`; the server then answers
# the requests under way and queued (up to --shutdown-timeout, 30 s) before it exits, so give
# `docker stop` more than that: `docker stop -t 40`, or stop_grace_period in Compose.
ENTRYPOINT ["anyner", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD []
