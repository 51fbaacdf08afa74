"""The ``jobs`` subcommands of run control: ``pause-all``, ``resume-all`` and
``maintenance`` (pause-all, maintenance mode). argparse only;
scheduling.cli.run_control_handlers acts on them. (The per-job controls,
``--jitter`` and ``--overlap``, are options of ``create`` and ``update``.)"""
from __future__ import annotations

import argparse

from scheduling.cli.code_parser import iso_datetime


def concurrency_group(name: str):
    """A concurrency group named on the command line (it must exist)."""
    from scheduling.models import ConcurrencyGroup

    group = ConcurrencyGroup.objects.filter(name=name).first()
    if group is None:
        raise argparse.ArgumentTypeError(f"no concurrency group named {name!r} (create it: jobs group-set NAME --max N)")
    return group


concurrency_group.__name__ = "concurrency group"


def add_job_limits(parser) -> None:
    """create's and update's --max-concurrent and --group."""
    parser.add_argument("--max-concurrent", dest="max_concurrent_runs", type=int, metavar="N",
                        help="At most N runs at once (overlap policy allow); more wait, queued, in order.")
    parser.add_argument("--group", dest="concurrency_group", type=concurrency_group, metavar="NAME",
                        help="Share a concurrency group's limit (see `jobs group-set`).")

EXAMPLES = {
    "pause-all": """\
./manage jobs pause-all --reason "database upgrade"               # the whole site, until resume-all
./manage jobs pause-all --org acme --until 2026-12-07T22:00+00:00  # one organization, ends by itself
./manage jobs pause-all --queue vision""",
    "resume-all": """\
./manage jobs resume-all          # every pause
./manage jobs resume-all --id 3   # one of them""",
    "maintenance": "./manage jobs maintenance --json",
    "run-after": """\
./manage jobs run-after transform --after extract                   # after extract succeeds
./manage jobs run-after report --after export:finished              # after export ends, whatever the outcome
./manage jobs run-after load --after transform --after enrich       # after both succeeded, same due time
./manage jobs run-after load --clear""",
    "group-set": """\
./manage jobs group-set document-api --max 2 --description "the external document API"
./manage jobs update vision-poll --group document-api""",
}
NOTES = {
    "pause-all": "While paused, no job in scope fires and run requests are refused unless forced (execute --force). "
                 "At the end (resume-all, or --until passing), each job's catch-up policy decides what runs, and the "
                 "fires not run are recorded as one 'missed' run. Audited.",
    "resume-all": "Ends the pauses; each job they covered (and no other pause still covers) is caught up per its "
                  "catch-up policy. Audited.",
}
EXIT_CODES = {"pause-all": {1: "refused (bad scope, an end in the past, no such organization)"},
              "resume-all": {1: "no such pause is in force"}}


def add_subcommands(add_parser) -> None:
    def add(name: str, help_text: str):
        return add_parser(name, help_text, examples=EXAMPLES[name].splitlines(), note=NOTES.get(name, ""),
                          exit_codes=EXIT_CODES.get(name))

    p = add("pause-all", "Maintenance mode: stop every job (or one organization's, or one queue's) from firing.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--org", metavar="NAME|UUID", help="Pause one organization's jobs only.")
    scope.add_argument("--queue", metavar="QUEUE", help="Pause the jobs on one queue only.")
    p.add_argument("--until", type=iso_datetime, metavar="WHEN", help="End it by itself then (ISO 8601, with offset).")
    p.add_argument("--reason", default="", help="Why: shown in the banner and in the refusals.")

    p = add("resume-all", "End maintenance mode: jobs fire again; each job's catch-up policy decides what runs now.")
    p.add_argument("--id", dest="pause_id", type=int, metavar="ID", help="End this pause only (see `maintenance`).")

    add("maintenance", "List the pauses in force (pause-all).")  # --json: the read commands' option

    p = add("run-after", "Make a job run after other jobs (for the same due time); show them with no option.")
    p.add_argument("job", metavar="ID|NAME", help="The job that runs after.")
    p.add_argument("--after", action="append", default=[], metavar="JOB[:success|:finished]",
                   help="An upstream job (repeatable; every one must have ended so). Default condition: success.")
    p.add_argument("--clear", action="store_true", help="Run after no job.")

    p = add("group-set", "Create or change a concurrency group: a limit of runs at once shared by its jobs.")
    p.add_argument("name", metavar="NAME", help="The group's name (what jobs give as --group).")
    p.add_argument("--max", dest="max_runs", type=int, required=True, metavar="N", help="At most N runs at once.")
    p.add_argument("--description", default="", help="What the limit protects.")
