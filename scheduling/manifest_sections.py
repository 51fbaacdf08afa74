"""The core's sections of a jobs-as-code file, ``calendars`` and ``jobs``
(scheduling.services.apply_calendars, apply_jobs): found by
``autodiscover_modules("manifest_sections")`` like every app's, so
scheduling.services.apply imports none of the sections that import it."""
import scheduling.services.apply_calendars  # noqa: F401  (registers "calendars")
import scheduling.services.apply_jobs  # noqa: F401  (registers "jobs")
