"""``./manage vision process`` (the one-shot batch processor, also the
``cron-batch-processor`` console script) and ``./manage vision demo-api`` (a
stand-in external API on loopback).

Help, global options anywhere, did-you-mean, one-line errors and exit codes
are jobsite.cli's CLICommand, as for ``./manage jobs``. ``-v 2`` (anywhere)
turns on the processor's debug log, as its own ``--verbose`` does.
"""
from __future__ import annotations

import sys

from django.core.management.base import CommandError

from jobsite.cli.command import CLICommand
from jobsite.cli.output import Console
from vision_pipeline import processor


class Command(CLICommand):
    name = "vision"
    subcommand_dest = "action"
    quiet_logs = False  # process's log (stderr) is its report
    help = (
        "Vision analysis batches from the shell. `process` fetches every unprocessed analysis from the "
        "external document API once, analyses its images and uploads the HTML reports (what the vision cron "
        "job does on a schedule); `demo-api` serves a stand-in external API with generated photos, to try "
        "`process` locally."
    )
    examples = [
        "./manage vision demo-api                    # in one terminal",
        "./manage vision process --dry-run           # in another, with the variables demo-api prints",
        "./manage vision process --config config.json -v 2",
    ]

    def add_subcommands(self, add):
        p = add(
            "process", "Process every unprocessed analysis once: download, analyse, upload the reports.",
            description=(
                "Process every unprocessed analysis of the external API once: download its images, analyse "
                "them, upload the HTML report. Settings come from the flags, then the JSON file of --config, "
                "then the environment (EXTERNAL_API_GET_URL, EXTERNAL_API_POST_URL, EXTERNAL_API_KEY, "
                "BACKEND_API_URL, ORGANIZATION_ID). The log (on stderr) never shows the key."),
            examples=[
                "./manage vision process",
                "./manage vision process --dry-run                    # fetch and validate only",
                "./manage vision process --config config.json --log-file /var/log/batch_processor.log",
                "./manage vision process --organization-id ORG --analyzer inspector -v 2",
            ],
            exit_codes={0: "every analysis succeeded (or there was none)",
                        1: "an analysis failed, or the external API could not be read",
                        2: "a configuration error (a missing or refused setting), or bad arguments"},
        )
        processor.add_arguments(p)
        # `-v` is every ./manage command's verbosity (-v 2 = debug log here); --verbose stays the processor's.
        verbose = p._option_string_actions.pop("-v")
        verbose.option_strings = [s for s in verbose.option_strings if s != "-v"]

        p = add(
            "demo-api", "Serve a stand-in external API with generated photos, on loopback, until Ctrl-C.",
            examples=["./manage vision demo-api",
                      "./manage vision demo-api --port 8766 --analyses 5 --images 2"],
            exit_codes={0: "stopped (Ctrl-C)", 130: ""},
        )
        p.add_argument("--host", default="127.0.0.1", help="Loopback address to listen on (default 127.0.0.1).")
        p.add_argument("--port", type=int, default=8765, help="Port (default 8765).")
        p.add_argument("--key", default="demo-jwt-token", help="The Bearer token it accepts.")
        p.add_argument("--analyses", type=int, default=2, help="Unprocessed analyses it offers (default 2).")
        p.add_argument("--images", type=int, default=3, help="Images per analysis (default 3).")
        p.add_argument("--reports-dir", default="", help="Save uploaded reports here (default var/demo-reports).")

    def do_process(self, console: Console, **options):
        options["verbose"] = options.get("verbose") or options.get("verbosity", 1) >= 2
        code = processor.execute(options, stream=sys.stderr)
        if code:
            sys.exit(code)

    def do_demo_api(self, console: Console, **options):
        from django.conf import settings

        from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI

        if options["host"] not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError("The demo API serves loopback only (--host 127.0.0.1).")
        reports = options["reports_dir"] or str(settings.VAR_DIR / "demo-reports")
        try:
            api = DemoExternalAPI(key=options["key"], host=options["host"], port=options["port"], reports_dir=reports)
        except OSError as exc:  # the port is taken, most often
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']} ({exc.strerror or exc}); "
                               "pass another --port.") from None
        api.add_demo_analyses(options["analyses"], options["images"])
        console.out(
            f"Demo external API on {api.url()} ({options['analyses']} unprocessed analyses, "
            f"{options['images']} images each); uploaded reports go to {reports}\n"
            f"  EXTERNAL_API_GET_URL={api.get_url}\n  EXTERNAL_API_POST_URL={api.post_url}\n"
            f"  EXTERNAL_API_KEY={options['key']}\n  ORGANIZATION_ID={DEMO_ORGANIZATION_ID}\n"
            "The pipeline reaches it only where loopback is allowed (OUTBOUND_HTTP_ALLOW_LOOPBACK, on with DEBUG, "
            f"or OUTBOUND_HTTP_ALLOW_HOSTS=127.0.0.1:{api.port}). Ctrl-C stops it.")
        console.flush()
        try:
            api.serve_forever()
        except KeyboardInterrupt:  # the way to stop a server: not a failure
            console.out("Demo API stopped.")
        finally:
            api.httpd.server_close()
