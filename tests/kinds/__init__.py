"""A test-only app that adds the ``test_countdown`` job kind the way any app
would: an ``executors`` module, found by autodiscovery. Nothing else in the
project names it."""
