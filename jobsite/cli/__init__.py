"""What the project's command-line tools share (``./manage jobs``,
``./manage predictions``, ``./manage vision`` and ``./manage`` itself), kept
generic: nothing here imports an app.

- ``entry``: ./manage's entry: every known failure of every command as one line;
- ``errors``: the known failures, their lines and exit codes;
- ``command``: ``CLICommand``, the base of the subcommand CLIs;
- ``parsing``: global options anywhere, did-you-mean, help that never breaks words;
- ``output``: the Console: terminal tables, tab-separated lines elsewhere, JSON;
- ``progress``: a progress line that fits the terminal.
"""
