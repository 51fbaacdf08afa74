"""The one-shot batch processor of seed 001: ``cron-batch-processor`` (console
script) and ``./manage vision process``.

Settings come from, in order of precedence: the command-line flags, the JSON
file of ``--config``, the environment (``EXTERNAL_API_GET_URL``,
``EXTERNAL_API_POST_URL``, ``EXTERNAL_API_KEY``, ``BACKEND_API_URL``,
``ORGANIZATION_ID``), then the defaults. It fetches every unprocessed
analysis, processes each one exactly as a /cron-jobs run does, logs a summary
with the key redacted, and exits 0 when every analysis succeeded, 1 when any
failed (or the external API could not be read), 2 on a configuration error.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

FIELDS = ("external_api_get_url", "external_api_post_url", "external_api_key", "backend_api_url", "organization_id")
REQUIRED = ("external_api_get_url", "external_api_post_url", "external_api_key", "organization_id")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
LOGGER = "vision_pipeline.processor"


class ConfigError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON file with the settings below (a config.json)")
    parser.add_argument("--external-api-get-url", help="URL to fetch unprocessed analyses (EXTERNAL_API_GET_URL)")
    parser.add_argument("--external-api-post-url", help="URL to upload reports (EXTERNAL_API_POST_URL)")
    parser.add_argument("--external-api-key", help="JWT for the external API (EXTERNAL_API_KEY); prefer the env "
                                                   "or the config file, a flag shows in the process list")
    parser.add_argument("--backend-api-url", help="batch backend (BACKEND_API_URL, default http://localhost:8000: "
                                                  "this installation, in-process)")
    parser.add_argument("--organization-id", help="organization to process (ORGANIZATION_ID)")
    parser.add_argument("--analyzer", help="model to analyse with (default inspector; see /available_models)")
    parser.add_argument("--analysis-timeout", type=int, metavar="SECONDS", help="per analysis (default 3600)")
    parser.add_argument("--page-size", type=int, help="page size of the external GET API (default 50)")
    parser.add_argument("--dry-run", action="store_true", help="fetch and validate only: no download, analysis or "
                                                               "upload")
    parser.add_argument("--log-file", metavar="FILE", help="also append the log to FILE (e.g. "
                                                           "/var/log/batch_processor.log)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser(prog: str = "cron-batch-processor") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Process every unprocessed vision analysis of the external API once: download, "
                               "analyse, upload the HTML reports.")
    add_arguments(parser)
    return parser


def resolve_config(options: dict[str, Any], environ: os._Environ | dict = os.environ) -> dict[str, Any]:
    """Flags over the config file over the environment over the defaults."""
    from django.conf import settings

    values: dict[str, Any] = {"backend_api_url": "http://localhost:8000"}
    for name in FIELDS:
        if environ.get(name.upper()):
            values[name] = environ[name.upper()]
    if options.get("config"):
        path = Path(options["config"])
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
        except ValueError:
            raise ConfigError(f"--config {path}: not valid JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {path}: must be a JSON object")
        unknown = sorted(set(data) - set(FIELDS) - {"analyzer", "analysis_timeout_seconds", "page_size"})
        if unknown:
            raise ConfigError(f"--config {path}: unknown setting(s) {', '.join(unknown)}; use {', '.join(FIELDS)}")
        values.update({k: v for k, v in data.items() if v not in (None, "")})
    for name in FIELDS:
        if options.get(name):
            values[name] = options[name]
    if options.get("analyzer"):
        values["analyzer"] = options["analyzer"]
    if options.get("analysis_timeout"):
        values["analysis_timeout_seconds"] = options["analysis_timeout"]
    if options.get("page_size"):
        values["page_size"] = options["page_size"]
    missing = [name for name in REQUIRED if not values.get(name)]
    if missing:
        raise ConfigError("missing " + ", ".join(f"--{m.replace('_', '-')} (or {m.upper()})" for m in missing))
    for name in FIELDS:
        if not isinstance(values.get(name, ""), str):
            raise ConfigError(f"{name} must be a string")
    values.setdefault("analysis_timeout_seconds", settings.VISION_ANALYSIS_TIMEOUT_SECONDS)
    values.setdefault("page_size", settings.VISION_EXTERNAL_PAGE_SIZE)
    return values


class _KeyFilter(logging.Filter):
    """Takes the key (and URL secrets) out of every record the processor's handlers write."""

    def __init__(self, *secrets: str):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        from vision_pipeline.external import scrub

        message = scrub(record.getMessage(), *self.secrets)
        if record.exc_info:
            message += "\n" + scrub(logging.Formatter().formatException(record.exc_info), *self.secrets)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = message, None
        return True


def _logging(options: dict[str, Any], secrets: list[str], stream) -> list[logging.Handler]:
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    if options.get("log_file"):
        handlers.append(logging.FileHandler(options["log_file"]))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    level = logging.DEBUG if options.get("verbose") else logging.INFO
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_KeyFilter(*secrets))
        handler.setLevel(level)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        _saved[name] = (logger.level, logger.propagate)
        logger.setLevel(level)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = False
    return handlers


LOGGERS = ("vision_pipeline", "jobsite.http")
_saved: dict[str, tuple[int, bool]] = {}


def execute(options: dict[str, Any], *, stream=None, environ=os.environ) -> int:
    """Run once with parsed ``options``; returns the exit code."""
    from vision_pipeline import services

    stream = stream or sys.stderr
    try:
        values = resolve_config(options, environ)
    except ConfigError as exc:
        print(f"cron-batch-processor: error: {exc}", file=stream)
        return EXIT_CONFIG
    handlers = _logging(options, [values["external_api_key"]], stream)
    log = logging.getLogger(LOGGER)
    try:
        problems = services.outbound_url_problems(values)
        if problems:  # a refused URL is a configuration error
            log.error("%s", "; ".join(f"{k}: {' '.join(v)}" for k, v in problems.items()))
            return EXIT_CONFIG
        config = services.ProcessorConfig(
            external_api_get_url=values["external_api_get_url"], external_api_post_url=values["external_api_post_url"],
            external_api_key=values["external_api_key"], organization_id=values["organization_id"],
            backend_api_url=values.get("backend_api_url") or services.DEFAULT_BACKEND_URL,
            analyzer=values.get("analyzer") or "inspector",
            analysis_timeout_seconds=int(values["analysis_timeout_seconds"]), page_size=int(values["page_size"]),
        )
        log.info("processing analyses of organization %s from %s%s", config.organization_id,
                 config.external_api_get_url, " (dry run)" if options.get("dry_run") else "")
        summary = services.process_analyses(config=config, source="cli", dry_run=bool(options.get("dry_run")),
                                            log=log)
        for result in summary.results:
            log.info("  %s %s%s%s", result["vision_analysis_id"], result["status"],
                     f" batch {result['batch_id']}" if result.get("batch_id") else "",
                     f": {result['error']}" if result.get("error") else "")
        log.info("summary: %s", summary.output)
        return EXIT_OK if summary.ok else EXIT_FAILED
    finally:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            for handler in handlers:
                logger.removeHandler(handler)
            level, propagate = _saved.pop(name, (logging.NOTSET, True))
            logger.setLevel(level)  # (setLevel, not .level =: it clears the loggers' level cache)
            logger.propagate = propagate
        for handler in handlers[1:]:
            handler.close()


def main(argv: list[str] | None = None) -> int:
    """Console script ``cron-batch-processor``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    import django

    django.setup()
    options = vars(build_parser().parse_args(argv))
    return execute(options)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
