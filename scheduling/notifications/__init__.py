"""Notifications: a job tells people when it fails, recovers or goes overdue.

An app of its own (label ``notifications``). The scheduling core does not
know it: it listens to ``scheduling.signals.execution_finished`` and reads
overdue jobs through ``scheduling.selectors``.
"""
