"""Workflow schedules (seed 002): stored workflows of ordered steps, run as
jobs of kind ``workflow`` on the scheduling core.

A Django app of its own (label ``workflows``) so that the core's
``autodiscover_modules("executors")`` finds the ``workflow`` kind in
``executors.py``; nothing in the core names it. It imports the core and
``jobsite``, never another facade: step types of other apps arrive through
their ``workflow_steps`` modules (see ``steps.py``).
"""
