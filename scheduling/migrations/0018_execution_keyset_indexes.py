"""Indexes of the run history's keyset order (scheduling.pagination.RUN_ORDER:
created_at, then id, newest first) after each filter of GET
/api/v1/executions/ and GET /api/v1/jobs/{id}/executions/: status, job, job and
status. With them a page is an index range however deep its cursor, an
OFFSET and a capped count read the index alone, and no filter sorts its runs.

Database-only (the model's state is unchanged, so no model change goes with
this migration): plain SQL that SQLite and PostgreSQL read alike.
"""
from django.db import migrations

INDEXES = {
    "exec_status_created_id": "status, created_at DESC, id DESC",
    "exec_job_created_id": "job_id, created_at DESC, id DESC",
    "exec_job_status_created_id": "job_id, status, created_at DESC, id DESC",
}


class Migration(migrations.Migration):

    dependencies = [
        ("scheduling", "0017_run_after"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX {name} ON scheduling_execution ({columns})",
            reverse_sql=f"DROP INDEX {name}",
        )
        for name, columns in INDEXES.items()
    ]
