"""The descriptions the facades wrote into their jobs named the seed documents
("Seed-002 workflow schedule 'x'", "... (seed 000 /cron-jobs).", "... (seed
004) ..."): rewritten in the words the services now use, which name the API
the job was created through. Other descriptions are left alone."""
import re

from django.db import migrations

REWRITES = [
    (re.compile(r"^Seed-002 workflow schedule '(?P<name>.*)'$", re.S),
     r"Workflow schedule '\g<name>' (created through /api/cron/jobs)"),
    (re.compile(r"^(?P<what>Vision analysis for organization .*) \(seed 000 /cron-jobs\)\.$", re.S),
     r"\g<what> (created through /cron-jobs)."),
    (re.compile(r"^Scores uploaded CSV/XLSX files \(seed 004\)\.", re.S),
     "Scores uploaded CSV/XLSX files (/api/v1/predictions)."),
]


def name_the_apis(apps, schema_editor):
    Job = apps.get_model("scheduling", "Job")
    for job in Job.objects.filter(description__iregex=r"seed[ -]00[0-4]").only("pk", "description").iterator():
        text = job.description
        for pattern, replacement in REWRITES:
            text = pattern.sub(replacement, text)
        if text != job.description:
            Job.objects.filter(pk=job.pk).update(description=text)


class Migration(migrations.Migration):

    dependencies = [
        ("scheduling", "0011_execution_created_status_index"),
    ]

    operations = [
        migrations.RunPython(name_the_apis, migrations.RunPython.noop, elidable=True),
    ]
