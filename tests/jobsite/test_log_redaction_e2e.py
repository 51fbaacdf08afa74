"""No credential reaches a real worker's log file: a task fails with a job's
secret, a password, a URL's user info and a secret setting in its exception
(Celery logs it with its traceback), after a signal receiver failed with the
secret inside Django's send_robust (logged with its traceback too)."""
import pytest
from django.conf import settings

from jobsite.celery import app
from jobsite.crypto import secrets_encrypt
from tests.worker import start_worker_process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUEUE = "log-redaction"  # a queue of its own: no other worker of the session takes the task
JOB_SECRET = "zq7-Job-Secret-Value"
PASSWORD = "hunter2-Pass-Word"
URL_PASSWORD = "url-Pass-4711"


def test_a_failing_task_leaves_no_secret_in_the_worker_log():
    # given: a worker with the leaky tasks (tests/jobsite/logapp) on a queue of its own
    worker = start_worker_process(concurrency=1, queues=[QUEUE], hostname="redaction@%h",
                                  extra_env={"JOBS_EXTRA_APPS": "tests.kinds,tests.jobsite.logapp"})
    try:
        # when: a task fails with every kind of credential in its error
        result = app.send_task("tests.logapp.fail_with_secrets", queue=QUEUE, kwargs={
            "token": secrets_encrypt({"api_key": JOB_SECRET}), "password": PASSWORD,
            "url": f"https://reporter:{URL_PASSWORD}@reports.example.com/upload",
            "setting_value": settings.SECRET_KEY,
        })
        result.get(timeout=60, propagate=False)
        assert result.failed()
        wait_for(lambda: "raised unexpected" in worker.log(), timeout=30, message="the failure in the worker's log")
    finally:
        worker.stop()
    # then: the log has both errors and their tracebacks, without a credential
    log = worker.log()
    assert "Error calling" in log and "send_robust" in log, log[-3000:]  # the receiver's error, by Django
    assert "ConnectionError: webhook refused credential ***" in log, log[-3000:]
    assert "RuntimeError: upstream refused ***; password=***; at https://***@reports.example.com/upload" in log, (
        log[-3000:])
    for secret in (JOB_SECRET, PASSWORD, URL_PASSWORD, settings.SECRET_KEY):
        assert secret not in log, f"{secret!r} in the worker's log:\n{log[-3000:]}"
