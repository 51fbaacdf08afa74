"""Seed 001's one-shot processor: flags, config file, env vars, exit codes,
--dry-run, the key kept out of the log; ``./manage vision`` and the
``cron-batch-processor`` console script."""
import io
import json
import subprocess
import sys

import pytest
from django.core.management import call_command

from jobsite import http
from tests.worker import worker_env
from vision_pipeline import processor, samples
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch

KEY = "cli-secret-jwt-987"


@pytest.fixture
def external(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.01)
    server = DemoExternalAPI(key=KEY).start()
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.OUTBOUND_HTTP_RETRIES = 1
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    yield server
    server.stop()


def env_for(api, **extra):
    return {"EXTERNAL_API_GET_URL": api.get_url, "EXTERNAL_API_POST_URL": api.post_url, "EXTERNAL_API_KEY": KEY,
            "ORGANIZATION_ID": DEMO_ORGANIZATION_ID, **extra}


def run(options=None, environ=None):
    stream = io.StringIO()
    parsed = vars(processor.build_parser().parse_args(options or []))
    code = processor.execute(parsed, stream=stream, environ=environ or {})
    return code, stream.getvalue()


def jpeg(kind="rust"):
    return samples.encode(samples.variant(kind, 320, 240))


@pytest.mark.django_db
def test_env_vars_alone_run_everything_and_exit_0(external):
    external.add_analysis(images=[("a.jpg", jpeg())])
    external.add_analysis(images=[("b.jpg", jpeg("clean"))])
    code, log = run(environ=env_for(external))
    assert code == 0, log
    assert "summary: Processed 2 analyses: 2 succeeded, 0 failed (2 images)" in log
    assert len(external.uploads) == 2 and Batch.objects.filter(source="cli").count() == 2
    assert KEY not in log


@pytest.mark.django_db
def test_any_failed_analysis_exits_1(external):
    external.add_analysis(images=[("a.jpg", b"not an image")])
    external.add_analysis(images=[("b.jpg", jpeg())])
    code, log = run(environ=env_for(external))
    assert code == 1 and "1 succeeded, 1 failed" in log and "a.jpg: not an image" in log


@pytest.mark.django_db
def test_an_unreachable_api_exits_1_with_the_key_redacted(external):
    external.get_status = 503
    code, log = run(["--external-api-key", KEY], environ=env_for(external, EXTERNAL_API_KEY="other"))
    assert code == 1 and "External API returned 503" in log and KEY not in log


@pytest.mark.django_db
def test_flags_beat_the_config_file_which_beats_the_environment(external, tmp_path):
    external.add_analysis(images=[("a.jpg", jpeg())])
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"external_api_get_url": external.get_url, "external_api_post_url": "http://x/",
                                  "external_api_key": KEY, "organization_id": DEMO_ORGANIZATION_ID}))
    environ = {"EXTERNAL_API_GET_URL": "http://wrong/", "EXTERNAL_API_POST_URL": "http://wrong/",
               "EXTERNAL_API_KEY": "wrong", "ORGANIZATION_ID": "wrong"}
    code, log = run(["--config", str(config), "--external-api-post-url", external.post_url], environ=environ)
    assert code == 0, log
    assert external.uploads[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.django_db
@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("{oops", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"external_api_url": "x"}', "unknown setting(s) external_api_url"),
])
def test_a_bad_config_file_exits_2_naming_it(tmp_path, content, message):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    code, log = run(["--config", str(path)])
    assert code == 2 and message in log and str(path) in log


@pytest.mark.django_db
def test_missing_settings_exit_2_naming_flag_and_variable():
    code, log = run(["--organization-id", "x"])
    assert code == 2
    assert "--external-api-get-url (or EXTERNAL_API_GET_URL)" in log and "--external-api-key" in log


@pytest.mark.django_db
def test_a_refused_url_is_a_configuration_error(external):
    code, log = run(environ=env_for(external, EXTERNAL_API_GET_URL="http://169.254.169.254/x"))
    assert code == 2 and "external_api_get_url: refused" in log


@pytest.mark.django_db
def test_manage_vision_process_dry_run(external, capsys):
    external.add_analysis(images=[("a.jpg", jpeg())], descriptions={"a.jpg": "x"})
    call_command("vision", "process", "--dry-run", "--external-api-get-url", external.get_url,
                 "--external-api-post-url", external.post_url, "--external-api-key", KEY,
                 "--organization-id", DEMO_ORGANIZATION_ID)
    log = capsys.readouterr().err
    assert "(dry run)" in log and "summary: Processed 1 analyses: 1 succeeded" in log and KEY not in log
    assert external.uploads == [] and not Batch.objects.exists()


@pytest.mark.django_db
def test_manage_vision_process_exits_with_the_code(external):
    external.get_status = 500
    with pytest.raises(SystemExit) as exit_info:
        call_command("vision", "process", "--external-api-get-url", external.get_url, "--external-api-post-url",
                     external.post_url, "--external-api-key", KEY, "--organization-id", DEMO_ORGANIZATION_ID)
    assert exit_info.value.code == 1


@pytest.mark.django_db
def test_the_console_script_runs_as_a_real_process(external, tmp_path):
    external.add_analysis(images=[("a.jpg", jpeg())])
    log_file = tmp_path / "batch_processor.log"
    env = worker_env({**env_for(external), "OUTBOUND_HTTP_ALLOW_LOOPBACK": "false",
                      "OUTBOUND_HTTP_ALLOW_HOSTS": f"127.0.0.1:{external.port}"})
    script = [sys.executable, "-c", "import sys; from vision_pipeline.processor import main; sys.exit(main())"]
    done = subprocess.run([*script, "--dry-run", "--log-file", str(log_file)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 succeeded" in done.stderr and KEY not in done.stderr + done.stdout
    assert "1 succeeded" in log_file.read_text() and KEY not in log_file.read_text()
    done = subprocess.run([*script], env={**env, "EXTERNAL_API_KEY": ""}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--external-api-key (or EXTERNAL_API_KEY)" in done.stderr


@pytest.mark.django_db
def test_a_refused_backend_url_is_a_configuration_error_and_this_server_is_not(external, settings):
    code, log = run(environ=env_for(external, BACKEND_API_URL="http://169.254.169.254"))
    assert code == 2 and "backend_api_url: refused: 169.254.169.254 is a link-local" in log
    settings.JOBSITE_PUBLIC_URL = "http://127.0.0.1:8010"
    code, log = run(["--dry-run"], environ=env_for(external, BACKEND_API_URL="http://localhost:8010"))
    assert code == 0, log
