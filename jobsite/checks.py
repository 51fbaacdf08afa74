"""System checks: configuration mistakes surface at start-up (`manage.py check`,
runserver, gunicorn via migrate), not as a 500 on the first request."""
from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def external_jwt_key_check(app_configs, **kwargs):
    if not settings.JWT_EXTERNAL_PUBLIC_KEY:
        return []
    from jobsite.auth import load_public_key

    try:
        load_public_key(settings.JWT_EXTERNAL_PUBLIC_KEY)
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="Paste the identity provider's public key in PEM form (\\n for newlines).",
                      id="jobsite.E001")]
    return []
