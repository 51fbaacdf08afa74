# jobsite: one image for web (gunicorn), Celery workers and Celery beat.
# Used by docker-compose.yml; the command decides what a container runs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them: exactly the
# locked versions (uv.lock, exported for pip; every file checked against its hash).
# The image is the production deployment of every part, so requirements/image.txt
# is the runtime plus two extras: ocr, since the vision workers run from this image
# and read text as in development and the tests (the `ocr` model, and the default
# analyzer with VISION_OCR=auto; VISION_OCR=off skips it) — rapidocr + onnxruntime,
# ~120 MB with PP-OCR's models; and observability, since tracing and Sentry are
# turned on by environment variables in production (a few MB).
# --build-arg LOCKED=requirements/runtime.txt builds a smaller image without either
# (the `ocr` model is then listed as unavailable; tracing and Sentry stay off).
ARG LOCKED=requirements/image.txt
COPY requirements/ requirements/
RUN pip install --require-hashes --no-deps -r "$LOCKED"

COPY . .
RUN pip install --no-deps .

# The source tree comes first on sys.path for gunicorn, celery and manage.py
# alike, so templates and other data files are found next to the code.
ENV PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=jobsite.settings \
    JOBSITE_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    DEBUG=false

# Never run as root (Celery refuses to without C_FORCE_ROOT); named volumes
# mounted on these directories inherit their ownership.
RUN useradd --create-home --uid 10001 jobsite \
    && mkdir -p /app/var /app/staticfiles \
    && chown -R jobsite:jobsite /app/var /app/staticfiles
USER jobsite

EXPOSE 8000
CMD ["gunicorn", "jobsite.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
