#!/usr/bin/env python
"""Django's command-line utility, through jobsite.cli.entry: a known failure
of any command (unmigrated or unreachable database, broker down, a missing
setting, Ctrl-C) is one line on stderr and a conventional exit code."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    from jobsite.cli.entry import main as run

    run(sys.argv)


if __name__ == "__main__":
    main()
