# Vesalius PACS image: one image for every process (web, scp, worker, beat); the command
# chooses the process. See docker-compose.yml. DCMTK is only needed by the tests, not here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PACS_DATA_DIR=/data

RUN groupadd --system --gid 1000 vesalius \
    && useradd --system --uid 1000 --gid vesalius --home-dir /app --shell /usr/sbin/nologin vesalius

WORKDIR /app
COPY . /app
# redis: the client for CELERY_BROKER_URL=redis://... used by docker-compose.yml.
RUN pip install /app "redis>=5,<6" \
    && mkdir -p /data \
    && chown -R vesalius:vesalius /data

USER vesalius
VOLUME ["/data"]
# 8000 web (console, REST API, /dicomweb/), 8010 DICOMweb at the root when enabled,
# 3000 DICOM, 3001 MWL/MPPS (when the worklist service exists).
EXPOSE 8000 8010 3000 3001

CMD ["gunicorn", "pacs.wsgi", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", \
     "--workers", "2", "--threads", "4", "--timeout", "300", "--access-logfile", "-"]
