"""/favicon.ico is served, and a 4xx is logged once (issue 26)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

BASE_DIR = Path(settings.BASE_DIR)


@pytest.mark.django_db
def test_favicon_is_an_icon_not_a_404(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert "max-age=86400" in response["Cache-Control"]
    from io import BytesIO

    icon = Image.open(BytesIO(response.content))
    assert icon.format == "ICO" and (32, 32) in icon.info["sizes"]


@pytest.mark.django_db
def test_the_home_page_names_its_icon(client):
    html = client.get("/").content.decode()

    assert 'rel="icon"' in html and "favicon" in html


def test_a_4xx_is_logged_once(tmp_path):
    # in a process of its own: pytest's log capture replaces the handlers this is about
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "Client().get('/no-such-page-here')\n"
        "Client().get('/api/no-such-api-here')\n"
    )
    env = dict(os.environ, JOBSITE_VAR_DIR=str(tmp_path), DEBUG="true")
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    log = done.stdout + done.stderr

    assert log.count("Not Found: /no-such-page-here") == 1, log
    assert log.count("Not Found: /api/no-such-api-here") == 1, log
    assert "WARNING django.request: Not Found: /no-such-page-here" in log
