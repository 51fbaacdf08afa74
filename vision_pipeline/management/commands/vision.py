"""``./manage vision process`` (seed 001's one-shot processor) and
``./manage vision demo-api`` (a stand-in external API on loopback)."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from vision_pipeline import processor


class Command(BaseCommand):
    help = "Vision pipeline: `process` runs seed 001's one-shot processor; `demo-api` serves a local external API."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        process = actions.add_parser("process", help="process every unprocessed analysis once (exit 1 if any failed)")
        processor.add_arguments(process)
        demo = actions.add_parser("demo-api", help="serve a stand-in external API with generated photos")
        demo.add_argument("--host", default="127.0.0.1")
        demo.add_argument("--port", type=int, default=8765)
        demo.add_argument("--key", default="demo-jwt-token", help="the Bearer token it accepts")
        demo.add_argument("--analyses", type=int, default=2)
        demo.add_argument("--images", type=int, default=3, help="images per analysis")
        demo.add_argument("--reports-dir", default="", help="save uploaded reports here (default var/demo-reports)")

    def handle(self, *args, **options):
        if options["action"] == "process":
            code = processor.execute(options, stream=sys.stderr)
            if code:
                sys.exit(code)
            return
        self.demo_api(options)

    def demo_api(self, options):
        from django.conf import settings

        from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI

        if options["host"] not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError("The demo API serves loopback only (--host 127.0.0.1).")
        reports = options["reports_dir"] or str(settings.VAR_DIR / "demo-reports")
        api = DemoExternalAPI(key=options["key"], host=options["host"], port=options["port"], reports_dir=reports)
        api.add_demo_analyses(options["analyses"], options["images"])
        self.stdout.write(
            f"Demo external API on {api.url()} ({options['analyses']} unprocessed analyses, "
            f"{options['images']} images each); uploaded reports go to {reports}\n"
            f"  EXTERNAL_API_GET_URL={api.get_url}\n  EXTERNAL_API_POST_URL={api.post_url}\n"
            f"  EXTERNAL_API_KEY={options['key']}\n  ORGANIZATION_ID={DEMO_ORGANIZATION_ID}\n"
            "The pipeline reaches it only where loopback is allowed (OUTBOUND_HTTP_ALLOW_LOOPBACK, on with DEBUG, "
            f"or OUTBOUND_HTTP_ALLOW_HOSTS=127.0.0.1:{api.port}). Ctrl-C stops it.\n")
        self.stdout.flush()
        try:
            api.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            api.httpd.server_close()
