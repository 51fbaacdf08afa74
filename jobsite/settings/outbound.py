"""Outbound HTTP: read by jobsite/http.py (and its SSRF guard,
jobsite/outbound_guard.py), the one client every outbound call goes through."""
from jobsite.settings.base import DEBUG, env

OUTBOUND_HTTP_TIMEOUT = env.float("OUTBOUND_HTTP_TIMEOUT", default=30.0)
OUTBOUND_HTTP_RETRIES = env.int("OUTBOUND_HTTP_RETRIES", default=3)
OUTBOUND_HTTP_MAX_BYTES = env.int("OUTBOUND_HTTP_MAX_BYTES", default=50 * 1024 * 1024)
# SSRF guard: loopback, private, link-local, multicast and reserved targets are
# refused unless allowed here. ALLOW_PRIVATE covers RFC 1918/ULA/CGNAT only
# (never link-local such as cloud metadata at 169.254.169.254).
OUTBOUND_HTTP_ALLOW_PRIVATE = env.bool("OUTBOUND_HTTP_ALLOW_PRIVATE", default=False)
OUTBOUND_HTTP_ALLOW_LOOPBACK = env.bool("OUTBOUND_HTTP_ALLOW_LOOPBACK", default=DEBUG)
# Entries are `host`, `host:port`, `[v6]:port` or a CIDR; deny wins and also covers subdomains.
OUTBOUND_HTTP_ALLOW_HOSTS = env.list("OUTBOUND_HTTP_ALLOW_HOSTS", default=[])
OUTBOUND_HTTP_DENY_HOSTS = env.list("OUTBOUND_HTTP_DENY_HOSTS", default=[])
