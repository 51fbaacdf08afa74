"""The ``jobs`` management command's parts: ``parser`` (arguments and help),
``handlers`` (one function per subcommand) and ``rendering`` (how results are
shown). scheduling/management/commands/jobs.py only wires them to Django."""
