"""The ``jobs`` subcommands of run control: ``pause-all``, ``resume-all`` and
``maintenance`` (pause-all, maintenance mode). argparse only;
scheduling.cli.run_control_handlers acts on them. (The per-job controls,
``--jitter`` and ``--overlap``, are options of ``create`` and ``update``.)"""
from __future__ import annotations

from scheduling.cli.code_parser import iso_datetime

EXAMPLES = {
    "pause-all": """\
./manage jobs pause-all --reason "database upgrade"               # the whole site, until resume-all
./manage jobs pause-all --org acme --until 2026-12-07T22:00+00:00  # one organization, ends by itself
./manage jobs pause-all --queue vision""",
    "resume-all": """\
./manage jobs resume-all          # every pause
./manage jobs resume-all --id 3   # one of them""",
    "maintenance": "./manage jobs maintenance --json",
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
