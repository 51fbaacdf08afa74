"""Date and time formats (settings.FORMAT_MODULE_PATH): every time the admin
and the project's pages show carries seconds and its time zone."""
