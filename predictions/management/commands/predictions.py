"""``./manage predictions <subcommand>``: bulk predictions from the shell.

    ./manage predictions upload FILE --type annual [--user alice] [--no-follow]
    ./manage predictions list [--status completed] [--limit 20]
    ./manage predictions show JOB_ID [--errors]
    ./manage predictions cancel JOB_ID
    ./manage predictions delete JOB_ID
    ./manage predictions results JOB_ID [-o FILE]

Thin: each subcommand calls one service or selector (as SYSTEM, the whole
installation) and prints the result; service errors become one-line
CommandErrors with a non-zero exit code.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobsite.exceptions import ApplicationError, error_message
from jobsite.tenancy import SYSTEM
from predictions import exports, selectors, serializers, services
from predictions.models import BulkUploadJob
from scheduling.models import Execution

POLL_SECONDS = 0.5
BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Bulk default-risk predictions: upload a file, follow, list, show, cancel, delete, download results."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        upload = sub.add_parser("upload", help="Upload a CSV/XLSX file and follow the job until it ends.")
        upload.add_argument("file", type=Path)
        upload.add_argument("--type", dest="job_type", choices=BulkUploadJob.JobType.values, required=True)
        upload.add_argument("--user", help="Username that owns the job (default: none; superusers see it).")
        upload.add_argument("--no-follow", action="store_true", help="Print the job id and return at once.")
        listing = sub.add_parser("list", help="List jobs, newest first.")
        listing.add_argument("--status", choices=BulkUploadJob.Status.values)
        listing.add_argument("--limit", type=int, default=20)
        listing.add_argument("--json", action="store_true", help="Print the API's JSON (GET /api/v1/predictions/jobs).")
        show = sub.add_parser("show", help="Show a job in full (JSON).")
        show.add_argument("job_id")
        show.add_argument("--errors", action="store_true", help="Include the first row errors.")
        for name, text in (("cancel", "Cancel a pending or processing job."),
                           ("delete", "Delete a job that is not processing."),
                           ("follow", "Follow a job's progress until it ends.")):
            sub.add_parser(name, help=text).add_argument("job_id")
        results = sub.add_parser("results", help="Write the predictions as CSV.")
        results.add_argument("job_id")
        results.add_argument("-o", "--output", type=Path, help="File to write (default: stdout).")

    def handle(self, *args, subcommand: str, **options):
        try:
            getattr(self, f"do_{subcommand}")(**options)
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(error_message(exc)) from exc

    # -- subcommands ---------------------------------------------------------
    def do_upload(self, *, file: Path, job_type: str, user: str | None, no_follow: bool, **_):
        from predictions.uploads import file_format_for, store_local_file

        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named '{user}'.")
        file_format = file_format_for(file.name)
        stored = store_local_file(file)
        upload = services.upload_create(user=owner, job_type=job_type, stored=stored, file_format=file_format,
                                        actor_label="cli", trigger=Execution.Trigger.CLI)
        self.stdout.write(f"Job {upload.pk} created ({upload.job_type}, {upload.total_rows:,} rows, "
                          f"{upload.file_size / 1024 / 1024:.1f} MB).")
        if not no_follow:
            self.do_follow(job_id=str(upload.pk))

    def do_follow(self, *, job_id: str, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        interactive = self.stdout.isatty()
        last_line = ""
        try:
            while True:
                upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
                line = self._progress_line(upload)
                if interactive:
                    self.stdout.write("\r" + line.ljust(len(last_line)), ending="")
                    self.stdout.flush()
                elif line != last_line:
                    self.stdout.write(line)
                last_line = line
                if not upload.is_active:
                    break
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stdout.write(f"Stopped following. Job {job_id} goes on in the background; "
                              f"cancel it with: ./manage predictions cancel {job_id}")
            return
        if interactive:
            self.stdout.write("")
        if upload.status == BulkUploadJob.Status.COMPLETED:
            self.stdout.write(self.style.SUCCESS(
                f"Completed: {upload.successful_rows:,} predictions, {upload.failed_rows:,} row errors. "
                f"Download with: ./manage predictions results {job_id} -o predictions.csv"))
        else:
            raise CommandError(f"Job {job_id} failed: {upload.error_message}")

    @staticmethod
    def _progress_line(upload: BulkUploadJob) -> str:
        pct = upload.progress_percentage
        filled = int(BAR_WIDTH * pct / 100)
        perf = serializers.performance(upload)
        rate = f"{perf['rows_per_second']:,.0f} rows/s" if perf["rows_per_second"] else "-"
        eta = perf.get("estimated_completion_time") or "-"
        return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {pct:5.1f}%  {upload.processed_rows:,}/"
                f"{upload.total_rows:,} rows  {upload.failed_rows:,} errors  {rate}  ETA {eta}  {upload.status}")

    def do_list(self, *, status: str | None, limit: int, json: bool = False, **_):
        uploads = selectors.upload_list(user=SYSTEM, status=status, limit=limit)
        if json:
            import json as json_module

            jobs = [serializers.job_summary(u) for u in uploads]  # the API's list body
            self.stdout.write(json_module.dumps({"success": True, "jobs": jobs, "count": len(jobs), "limit": limit},
                                                indent=2, default=str))
            return
        self.stdout.write(f"{'ID':36}  {'TYPE':9}  {'STATUS':10}  {'ROWS':>9}  {'OK':>9}  {'ERRORS':>7}  FILE")
        for u in uploads:
            self.stdout.write(f"{str(u.pk):36}  {u.job_type:9}  {u.status:10}  {u.total_rows:>9,}  "
                              f"{u.successful_rows:>9,}  {u.failed_rows:>7,}  {u.original_filename}")

    def do_show(self, *, job_id: str, errors: bool, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        self.stdout.write(json.dumps(serializers.job_detail(upload, include_errors=errors), indent=2))

    def do_cancel(self, *, job_id: str, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        upload, revoked = services.upload_cancel(upload=upload, actor_label="cli", reason="cancelled from the CLI")
        self.stdout.write(f"Job {upload.pk} cancelled ({'task revoked' if revoked else 'no task'}): {upload.error_message}")

    def do_delete(self, *, job_id: str, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        deleted = services.upload_delete(upload=upload, actor_label="cli")
        self.stdout.write(f"Job {deleted['id']} deleted successfully.")

    def do_results(self, *, job_id: str, output: Path | None, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        if upload.status != BulkUploadJob.Status.COMPLETED:
            raise CommandError(f"Job {job_id} is {upload.status}: results exist once it has completed.")
        target = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
        try:
            for chunk in exports.results_csv(upload):
                target.write(chunk)
        finally:
            if output:
                target.close()
        if output:
            self.stderr.write(f"Wrote {upload.successful_rows:,} predictions to {output}.")
