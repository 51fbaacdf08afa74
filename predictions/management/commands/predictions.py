"""``./manage predictions <subcommand>``: bulk predictions from the shell.

Thin: each subcommand calls one service or selector (as SYSTEM, the whole
installation) and prints the result through jobsite.cli's Console (terminal
tables, tab-separated lines when piped, --json). Help, global options
anywhere, did-you-mean, one-line errors and exit codes are jobsite.cli's
CLICommand, as for ``./manage jobs``.
"""
from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from jobsite.cli.command import CLICommand
from jobsite.cli.errors import Interrupted
from jobsite.cli.output import Console, fixed, number, styled, text
from jobsite.humanize import duration, relative
from jobsite.tenancy import SYSTEM
from predictions import exports, selectors, serializers, services
from predictions.models import BulkUploadJob
from scheduling.models import Execution

POLL_SECONDS = 0.5
ERRORS_SHOWN = 20

LIST_COLUMNS = [fixed("ID"), fixed("Type"), fixed("Status"), number("Rows"), number("OK"), number("Errors"),
                fixed("Created"), fixed("File")]


def _progress_parts(upload: BulkUploadJob) -> tuple[str, list[str]]:
    """The progress line's essential text and its optional parts, most useful first."""
    essential = f"{upload.progress_percentage:5.1f}%  {upload.processed_rows:,}/{upload.total_rows:,} rows"
    rate = upload.rows_per_second
    eta = upload.estimated_completion_seconds
    optional = [f"{upload.failed_rows:,} errors", upload.status]
    if rate:
        optional.append(f"{rate:,.0f} rows/s")
    if eta is not None:
        optional.append(f"ETA {duration(eta)}")
    return essential, optional


class Command(CLICommand):
    name = "predictions"
    help = (
        "Bulk default-risk predictions: upload a CSV or XLSX file of companies and follow it, list the "
        "uploads, show one, cancel or delete one, download its predictions as CSV. Uploads are addressed by "
        "their id (a UUID, as `list` shows it). On a terminal tables fit its width; piped or redirected, "
        "output is tab-separated, header first; `list` and `show` take --json (the API's shapes)."
    )
    examples = [
        "./manage predictions upload data.csv --type annual --user alice",
        "./manage predictions list --status completed",
        "./manage predictions list | cut -f1,8          # ids and file names",
        "./manage predictions show JOB_ID --errors",
        "./manage predictions results JOB_ID -o predictions.csv",
    ]
    json_subcommands = frozenset({"list", "show"})
    json_help = "Print machine-readable JSON (the API's shapes) instead of a table."

    def add_subcommands(self, add):
        follow_note = ("While it runs, a progress line shows the rows done, errors, rate and time left (on a "
                       "terminal redrawn in place, fitted to its width; otherwise a plain line now and then). "
                       "Ctrl-C stops following, not the upload (exit 130).")
        p = add("upload", "Upload a CSV/XLSX file and follow the upload until it ends.", examples=[
            "./manage predictions upload data.csv --type annual",
            "./manage predictions upload q3.xlsx --type quarterly --user alice",
            "./manage predictions upload data.csv --type annual --no-follow   # print the id and return",
        ], note=follow_note, exit_codes={1: "refused (file, columns, user) or the upload failed"})
        p.add_argument("file", type=Path, metavar="FILE", help="A .csv or .xlsx file of companies.")
        p.add_argument("--type", dest="job_type", choices=BulkUploadJob.JobType.values, required=True,
                       help="Which model scores the rows: annual or quarterly figures.")
        p.add_argument("--user", help="Username that owns the upload (default: none; superusers see it).")
        p.add_argument("--no-follow", action="store_true", help="Print the upload's id and return at once.")

        p = add("follow", "Follow an upload's progress until it ends.", examples=[
            "./manage predictions follow JOB_ID"], note=follow_note, exit_codes={1: "the upload failed"})
        p.add_argument("job_id", metavar="JOB_ID", help="The upload's id.")

        p = add("list", "List uploads, newest first.", examples=[
            "./manage predictions list", "./manage predictions list --status processing --limit 5",
            "./manage predictions list --json"])
        p.add_argument("--status", choices=BulkUploadJob.Status.values, help="Only uploads in this status.")
        p.add_argument("--limit", type=int, default=20, help="How many (default 20).")

        p = add("show", "Show one upload: file, status, progress, timing and its first row errors.", examples=[
            "./manage predictions show JOB_ID", "./manage predictions show JOB_ID --errors",
            "./manage predictions show JOB_ID --json"])
        p.add_argument("job_id", metavar="JOB_ID", help="The upload's id.")
        p.add_argument("--errors", action="store_true", help=f"Also list the first {ERRORS_SHOWN} row errors.")

        p = add("cancel", "Cancel a pending or processing upload.", examples=["./manage predictions cancel JOB_ID"])
        p.add_argument("job_id", metavar="JOB_ID", help="The upload's id.")

        p = add("delete", "Delete an upload that is not processing, with its file and results.", examples=[
            "./manage predictions delete JOB_ID            # asks for confirmation",
            "./manage predictions delete JOB_ID --force    # no question asked"],
            note="Without a yes (an answer other than y, no terminal, end of input) nothing is deleted: it "
                 "says \"nothing deleted\" and exits 0.",
            exit_codes={0: "deleted, or nothing deleted (the question was not answered yes)"})
        p.add_argument("job_id", metavar="JOB_ID", help="The upload's id.")
        p.add_argument("--force", action="store_true", help="Do not ask for confirmation.")

        p = add("results", "Write a completed upload's predictions as CSV.", examples=[
            "./manage predictions results JOB_ID -o predictions.csv",
            "./manage predictions results JOB_ID | head"], exit_codes={1: "unknown upload, or not completed"})
        p.add_argument("job_id", metavar="JOB_ID", help="The upload's id.")
        p.add_argument("-o", "--output", type=Path, metavar="FILE", help="File to write (default: stdout).")

    # -- subcommands ---------------------------------------------------------
    def do_upload(self, console: Console, *, file: Path, job_type: str, user: str | None, no_follow: bool, **_):
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
        console.out(f"Job {upload.pk} created ({upload.job_type}, {upload.total_rows:,} rows, "
                    f"{upload.file_size / 1024 / 1024:.1f} MB).")
        if not no_follow:
            self.do_follow(console, job_id=str(upload.pk))

    def do_follow(self, console: Console, *, job_id: str, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        line = console.progress()
        try:
            while True:
                upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
                essential, optional = _progress_parts(upload)
                line.update(essential, optional, fraction=upload.progress_percentage / 100, key=upload.status)
                if not upload.is_active:
                    break
                sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            line.finish()
            raise Interrupted(f"stopped following; job {job_id} goes on in the background. Cancel it with "
                              f"`./manage predictions cancel {job_id}`.") from None
        line.finish()
        if upload.status == BulkUploadJob.Status.COMPLETED:
            console.success(
                f"Completed: {upload.successful_rows:,} predictions, {upload.failed_rows:,} row errors. "
                f"Download with: ./manage predictions results {job_id} -o predictions.csv")
        else:
            raise CommandError(f"Job {job_id} failed: {upload.error_message}")

    def do_list(self, console: Console, *, status: str | None, limit: int, json: bool = False, **_):
        uploads = list(selectors.upload_list(user=SYSTEM, status=status, limit=limit))
        if json:  # the API's list body
            jobs = [serializers.job_summary(u) for u in uploads]
            console.json({"success": True, "jobs": jobs, "count": len(jobs), "limit": limit})
            return
        if not uploads:
            console.note("No uploads found.")
            return
        now = timezone.now()
        console.table([[u.pk, u.job_type, styled(u.status), f"{u.total_rows:,}", f"{u.successful_rows:,}",
                        f"{u.failed_rows:,}", relative(u.created_at, now), u.original_filename] for u in uploads],
                      LIST_COLUMNS)

    def do_show(self, console: Console, *, job_id: str, errors: bool, json: bool = False, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        if json:
            console.json(serializers.job_detail(upload, include_errors=errors))
            return
        u = upload
        rate = u.rows_per_second
        eta = u.estimated_completion_seconds
        console.heading(f"Upload {u.pk}")
        console.pairs([
            ["File", u.original_filename],
            ["Format", f"{u.file_format}, {u.file_size / 1024 / 1024:.2f} MB"],
            ["Type", u.job_type],
            ["Status", styled(u.status)],
            ["Progress", f"{u.progress_percentage:.1f}% ({u.processed_rows:,} of {u.total_rows:,} rows)"],
            ["Predictions", f"{u.successful_rows:,}"],
            ["Row errors", f"{u.failed_rows:,}"],
            ["Processing time", duration(u.processing_time_seconds)],
            ["Rate", f"{rate:,.0f} rows/s" if rate else "-"],
            *([["Time left", duration(eta)]] if eta is not None else []),
            ["Created", _when(u.created_at)],
            ["Started", _when(u.started_at)],
            ["Finished", _when(u.completed_at)],
            ["Owner", u.owner.get_username() if u.owner_id else "-"],
            ["Error", u.error_message or "-"],
        ])
        if errors:
            from predictions.selectors import upload_row_errors

            rows = list(upload_row_errors(upload=u, limit=ERRORS_SHOWN))
            console.heading(f"\nRow errors (first {len(rows)} of {u.failed_rows:,})" if rows else "\nRow errors")
            if rows:
                console.table([[e.row_number, e.company_symbol or "-", e.error] for e in rows],
                              [number("Row"), fixed("Company"), text("Error")])
            else:
                console.out("  none")
        if u.status == BulkUploadJob.Status.COMPLETED:
            console.out(f"\nDownload with: ./manage predictions results {u.pk} -o predictions.csv")

    def do_cancel(self, console: Console, *, job_id: str, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        upload, revoked = services.upload_cancel(upload=upload, actor_label="cli", reason="cancelled from the CLI")
        console.out(f"Job {upload.pk} cancelled ({'task revoked' if revoked else 'no task'}): {upload.error_message}")

    def do_delete(self, console: Console, *, job_id: str, force: bool, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        if not force and not console.confirm(
                f"Delete upload {upload.pk} ({upload.original_filename}, {upload.total_rows:,} rows) and its "
                "results? [y/N] "):
            console.out(f"Nothing deleted: upload {upload.pk} was kept (answer y to delete, or pass --force).")
            return
        deleted = services.upload_delete(upload=upload, actor_label="cli")
        console.success(f"Job {deleted['id']} deleted successfully.")

    def do_results(self, console: Console, *, job_id: str, output: Path | None, **_):
        upload = selectors.upload_get(user=SYSTEM, job_id=job_id)
        if upload.status != BulkUploadJob.Status.COMPLETED:
            raise CommandError(f"Job {job_id} is {upload.status}: results exist once it has completed.")
        if output is None:
            for chunk in exports.results_csv(upload):
                console.write(chunk)
            return
        with open(output, "w", newline="", encoding="utf-8") as target:
            for chunk in exports.results_csv(upload):
                target.write(chunk)
        self.stderr.write(f"Wrote {upload.successful_rows:,} predictions to {output}.")


def _when(value) -> str:
    """``2026-12-07 08:12:29 UTC (3m ago)``."""
    if value is None:
        return "-"
    return f"{timezone.localtime(value).strftime('%Y-%m-%d %H:%M:%S %Z')} ({relative(value)})"


def sleep(seconds: float) -> None:
    """Between polls of ``follow`` (the tests replace it)."""
    import time

    time.sleep(seconds)
