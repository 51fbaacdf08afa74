"""The core's sections of a jobs-as-code file, ``concurrency_groups``,
``calendars`` and ``jobs`` (scheduling.services.apply_groups,
apply_calendars, apply_jobs): found by
``autodiscover_modules("manifest_sections")`` like every app's, so
scheduling.services.apply imports none of the sections that import it."""
import scheduling.services.apply_groups  # noqa: F401  (registers "concurrency_groups")
import scheduling.services.apply_calendars  # noqa: F401  (registers "calendars")
import scheduling.services.apply_jobs  # noqa: F401  (registers "jobs")
