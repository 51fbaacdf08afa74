import pytest
from cryptography.fernet import Fernet

from jobsite.crypto import secrets_decrypt, secrets_encrypt
from jobsite.exceptions import ApplicationError
from scheduling import services
from scheduling.models import AuditLog, Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def test_credentials_are_encrypted_at_rest_and_readable_by_services():
    job = JobFactory(secrets={"external_api_key": "tok-1234567"})
    stored = Job.objects.values_list("secrets", flat=True).get(pk=job.pk)
    assert "tok-1234567" not in stored and stored
    assert services.job_secrets(job) == {"external_api_key": "tok-1234567"}


def test_set_secrets_audits_only_the_key_names():
    job = services.job_set_secrets(job=JobFactory(), secrets={"external_api_key": "tok-4567890"})
    assert services.job_secrets(job) == {"external_api_key": "tok-4567890"}
    entry = AuditLog.objects.filter(action="update").latest("id")
    assert entry.changes == {"secrets": ["external_api_key"]}
    assert "tok-4567890" not in str(AuditLog.objects.values_list("changes", flat=True))


def test_a_changed_key_is_a_clear_error_not_a_crash(settings):
    token = secrets_encrypt({"k": "v"})
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(ApplicationError, match="cannot be decrypted"):
        secrets_decrypt(token)


def test_passphrase_keys_work(settings):
    settings.FIELD_ENCRYPTION_KEY = "a long passphrase, not a Fernet key"
    assert secrets_decrypt(secrets_encrypt({"k": "v"})) == {"k": "v"}
    assert secrets_decrypt("") == {}
