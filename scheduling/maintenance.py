"""Built-in schedulable maintenance tasks (the seed-003 default jobs)."""
