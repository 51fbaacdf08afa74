"""Bulk default-risk predictions (predictions/)."""
from jobsite.settings.base import VAR_DIR, env

# Largest bulk-upload file (CSV or XLSX); bigger ones answer 413. The upload
# streams to PREDICTIONS_STORAGE_DIR (never held in memory), so the limit is
# about disk and processing time.
PREDICTIONS_MAX_UPLOAD_MB = env.int("PREDICTIONS_MAX_UPLOAD_MB", default=256)
# Where uploaded files are kept until their job is deleted.
PREDICTIONS_STORAGE_DIR = env.path("PREDICTIONS_STORAGE_DIR", default=str(VAR_DIR / "predictions"))
# An XLSX is a zip: refuse one whose parts unzip to more than this (zip bombs).
PREDICTIONS_XLSX_MAX_UNCOMPRESSED_MB = env.int("PREDICTIONS_XLSX_MAX_UNCOMPRESSED_MB", default=1024)
# Soft time limit of one upload's run (set on the predictions.bulk-upload job when
# it is first created; change it there afterwards, like any job's timeout).
PREDICTIONS_TIMEOUT_SECONDS = env.int("PREDICTIONS_TIMEOUT_SECONDS", default=3600)
# Longest CSV line (bytes): a longer one is a 400 at upload, and the reader's
# blocks are sized to hold one (a row must fit in a block). A row spanning lines
# (quoted line breaks) and longer than this fails its run in plain words.
PREDICTIONS_MAX_LINE_BYTES = env.int("PREDICTIONS_MAX_LINE_BYTES", default=1024 * 1024)
# Longest cell (bytes, CSV or XLSX): a row with a longer one is a row error.
PREDICTIONS_MAX_CELL_BYTES = env.int("PREDICTIONS_MAX_CELL_BYTES", default=64 * 1024)
