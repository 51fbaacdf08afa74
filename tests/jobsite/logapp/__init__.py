"""A test-only app whose Celery tasks fail with credentials in their errors
(tests/jobsite/test_log_redaction_e2e.py installs it in a worker of its own
through JOBS_EXTRA_APPS)."""
