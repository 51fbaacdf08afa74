"""The ``jobs`` subcommands for jobs as code (``apply``, ``export``) and
``backfill``: argparse only; scheduling.cli.code_handlers acts on them."""
from __future__ import annotations

import argparse
from datetime import datetime

from scheduling.executors import registered_kinds

EXAMPLES = {
    "apply": """\
./manage jobs apply -f jobs.yaml --dry-run     # the plan, every check; nothing changes
./manage jobs apply -f jobs.yaml               # the plan, then apply it in one transaction
./manage jobs apply -f jobs.yaml --prune       # also delete jobs and workflows the file does not list
cat jobs.json | ./manage jobs apply -f -""",
    "export": """\
./manage jobs export > jobs.yaml
./manage jobs export --kind task --kind workflow > jobs.yaml""",
    "calendars": """\
./manage jobs calendars                                   # every calendar: what it holds, which jobs skip it
./manage jobs calendars "DE holidays" --from 2026-12-01 --to 2027-01-01   # the days and hours it covers""",
    "backfill": """\
./manage jobs backfill nightly_report --from 2026-03-01 --to 2026-03-15 --dry-run
./manage jobs backfill nightly_report --from 2026-03-01 --to 2026-03-15          # runs them one at a time
./manage jobs backfill 7 --from 2026-03-01T00:00+01:00 --to 2026-03-02T00:00+01:00""",
}
NOTES = {
    "apply": "The file (YAML or JSON) lists workflows and jobs by name; see docs/guides/jobs-as-code.md. Secrets are "
             "references (NAME: {from_env: VARIABLE}); an unset variable keeps the stored value. Any problem: every "
             "one is listed, naming file, document and field, and nothing is changed.",
    "export": "Every job (internal ones excepted) and workflow, in the format apply reads; secrets as from_env "
              "references named JOB_NAME_SECRET. With --kind: only jobs of those kinds.",
}
NOTES["backfill"] = ("One run per due time of the job's schedule in [--from, --to), in the job's time zone (a date or "
                     "date-time without an offset is read there), oldest first; due times that already have a run "
                     "are not run again. The runs go one at a time; the command queues the first and prints the "
                     "backfill's id (GET /api/v1/backfills/ID shows the progress, POST .../cancel stops it). At most "
                     "JOBS_BACKFILL_MAX due times (default 1000).")
EXIT_CODES = {"apply": {1: "the file has problems (listed on stderr); nothing was changed"},
              "backfill": {1: "refused (bad range, over JOBS_BACKFILL_MAX, no such job)"}}


def iso_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or date-time: {text!r}") from None


iso_datetime.__name__ = "ISO 8601 date-time"


def add_subcommands(add_parser) -> None:
    def add(name: str, help_text: str):
        return add_parser(name, help_text, examples=EXAMPLES[name].splitlines(), note=NOTES.get(name, ""),
                          exit_codes=EXIT_CODES.get(name))

    p = add("apply", "Apply a jobs-as-code file: print the plan, then create, update (and with --prune delete).")
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="The YAML or JSON file; - reads stdin.")
    p.add_argument("--dry-run", action="store_true", help="Show the plan and check everything; change nothing.")
    p.add_argument("--prune", action="store_true", help="Delete jobs and workflows the file does not list.")

    p = add("backfill", "Run a job once for each due time of a past range (one at a time), or list them.")
    p.add_argument("job", metavar="ID|NAME", help="Job id or unique name.")
    p.add_argument("--from", dest="start", required=True, type=iso_datetime, metavar="WHEN",
                   help="Start of the range (included): ISO 8601 date or date-time.")
    p.add_argument("--to", dest="end", required=True, type=iso_datetime, metavar="WHEN",
                   help="End of the range (excluded), not in the future.")
    p.add_argument("--dry-run", action="store_true", help="List the due times and which already ran; run nothing.")

    p = add("calendars", "List calendars, or show the days and hours one covers.")
    p.add_argument("calendar", nargs="?", metavar="NAME", help="A calendar's name: show what it covers.")
    p.add_argument("--from", dest="start", type=iso_datetime, metavar="DATE", help="First day (default: today).")
    p.add_argument("--to", dest="end", type=iso_datetime, metavar="DATE",
                   help="Day after the last (default: 31 days on; at most 366 days).")

    p = add("export", "Write every job and workflow as a jobs-as-code file (YAML) to stdout.")
    p.add_argument("--kind", dest="kinds", action="append", choices=registered_kinds(), metavar="KIND",
                   help=f"Only jobs of this kind (repeatable): {', '.join(registered_kinds())}.")
