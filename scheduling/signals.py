"""Signals of the scheduling core, for apps that react to runs without the
core knowing them (notifications, metrics...).

``execution_finished`` is sent once per execution that reaches a counted
final status (success, failed, timeout, error, cancelled), after the
transaction that recorded it commits, with ``execution_id``, ``job_id`` and
``status``, and ``previous_status``: the job's last outcome as read when the
run was claimed ("" for none yet; None when it was not read), and the run's
``trigger`` and ``scheduled_for``. Receivers run in the process that recorded
the outcome (usually a worker): keep them quick, or queue a task.
"""
from django.dispatch import Signal

execution_finished = Signal()
