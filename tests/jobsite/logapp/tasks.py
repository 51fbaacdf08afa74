"""Tasks that leak credentials into their errors, as careless code would."""
from celery import shared_task
from django.dispatch import Signal

from jobsite.crypto import secrets_decrypt

leaky = Signal()


def _receiver_that_fails(sender, *, value, **kwargs):
    raise ConnectionError(f"webhook refused credential {value}")


leaky.connect(_receiver_that_fails, weak=False, dispatch_uid="tests.logapp.leaky")


@shared_task(name="tests.logapp.fail_with_secrets")
def fail_with_secrets(token: str, password: str, url: str, setting_value: str) -> None:
    """Decrypt a job's credentials (as an executor does: the value is then a known
    secret of this process), send a signal whose receiver fails with the value
    (Django's send_robust logs the error with its traceback), then fail with every
    kind of credential in the exception's text."""
    secrets = secrets_decrypt(token)
    value = secrets["api_key"]
    leaky.send_robust(sender=None, value=value)
    raise RuntimeError(f"upstream refused {value}; password={password}; at {url}; signed {setting_value}")
