"""The vision pipeline (vision_pipeline/): image limits, storage, the
/cron-jobs defaults, the external API, analyzers, chunked batches."""
from jobsite.settings.base import VAR_DIR, env

# Images: refused above this many bytes (downloads are cut while streaming) or
# this many pixels (read from the header before anything is decoded, so a
# decompression bomb costs nothing). 40 MP covers every phone and most DSLRs.
VISION_MAX_IMAGE_BYTES = env.int("VISION_MAX_IMAGE_BYTES", default=30 * 1024 * 1024)
VISION_MAX_IMAGE_PIXELS = env.int("VISION_MAX_IMAGE_PIXELS", default=40_000_000)
VISION_MAX_IMAGES_PER_BATCH = env.int("VISION_MAX_IMAGES_PER_BATCH", default=500)
# A batch upload sends one form file per image: Django's default cap (100) would refuse big batches.
DATA_UPLOAD_MAX_NUMBER_FILES = max(100, VISION_MAX_IMAGES_PER_BATCH + 10)
# The descriptions JSON of an analysis (file name → description).
VISION_MAX_DESCRIPTIONS_BYTES = env.int("VISION_MAX_DESCRIPTIONS_BYTES", default=1024 * 1024)
# Parallel image downloads per analysis.
VISION_DOWNLOAD_CONCURRENCY = env.int("VISION_DOWNLOAD_CONCURRENCY", default=8)
# Where batch images (API uploads) and HTML reports are kept.
VISION_STORAGE_DIR = env.path("VISION_STORAGE_DIR", default=str(VAR_DIR / "vision"))
# Queue, run time limit and per-analysis limit of new /cron-jobs jobs (each job
# can change them afterwards, like any job); the analysis limit is the
# /cron-jobs contract's "1 hour".
VISION_QUEUE = env.str("VISION_QUEUE", default="vision")
VISION_JOB_TIMEOUT_SECONDS = env.int("VISION_JOB_TIMEOUT_SECONDS", default=3 * 3600)
VISION_ANALYSIS_TIMEOUT_SECONDS = env.int("VISION_ANALYSIS_TIMEOUT_SECONDS", default=3600)
# Page size of the external GET API (it is asked for page=1&page_size=...).
VISION_EXTERNAL_PAGE_SIZE = env.int("VISION_EXTERNAL_PAGE_SIZE", default=50)
# Where this installation is reached (scheme, host, port), e.g.
# https://jobs.example.com; `make run` sets it to its own web address when it
# is unset. A backend_api_url is "this installation" (batches made and analysed
# in-process, never over HTTP) when its origin is this one or one of
# VISION_LOCAL_BACKEND_URLS (seed 000's default http://localhost:8000 included),
# or when its host is one of ALLOWED_HOSTS (a bare "*" aside) with the scheme and
# port of one of those.
JOBSITE_PUBLIC_URL = env.str("JOBSITE_PUBLIC_URL", default="")
VISION_LOCAL_BACKEND_URLS = env.list("VISION_LOCAL_BACKEND_URLS",
                                     default=["http://localhost:8000", "http://127.0.0.1:8000"])
# The openai-compatible analyzer: any chat-completions endpoint that accepts images.
VISION_OPENAI_BASE_URL = env.str("VISION_OPENAI_BASE_URL", default="")
VISION_OPENAI_MODEL = env.str("VISION_OPENAI_MODEL", default="")
VISION_OPENAI_API_KEY = env.str("VISION_OPENAI_API_KEY", default="")
VISION_OPENAI_TIMEOUT_SECONDS = env.float("VISION_OPENAI_TIMEOUT_SECONDS", default=120.0)
# auto | on | off: whether the default analyzer also reads text (the [ocr] extra; on fails without it).
VISION_OCR = env.str("VISION_OCR", default="auto")
# A batch queues one chunk run per this many images beyond the first chunk, so
# free worker processes share it; at most VISION_MAX_CHUNKS runs per batch.
VISION_CHUNK_SIZE = env.int("VISION_CHUNK_SIZE", default=10)
VISION_MAX_CHUNKS = env.int("VISION_MAX_CHUNKS", default=8)
# OpenCV threads per process (vision_pipeline.images.opencv): a worker already runs
# one process per core. 0 lets OpenCV pick (all cores), for a one-process setup.
VISION_OPENCV_THREADS = env.int("VISION_OPENCV_THREADS", default=1)
