# https://docs.djangoproject.com/en/5.2/topics/i18n/formatting/#creating-custom-format-files
# "2026-01-05 02:00:03 UTC": sortable, with seconds and the zone (the admin shows
# times in settings.TIME_ZONE; "T" names it).
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
TIME_FORMAT = "H:i:s"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
