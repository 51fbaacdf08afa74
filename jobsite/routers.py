"""The router every facade uses for its seed's paths."""
from rest_framework.routers import Route, SimpleRouter


class SeedPathRouter(SimpleRouter):
    """Seeds write a collection as ``/api/v1/jobs/`` and everything else
    without a slash (``/api/v1/jobs/{id}/execute``). Every route accepts both
    forms (APPEND_SLASH is off, so nothing redirects a POST); the regexes are
    spelt so that the OpenAPI schema shows the seed's form: ``/?`` reads as
    ``/``, ``(?:/)?`` as nothing.

    A SimpleRouter, not a DefaultRouter: its API root view and format
    suffixes would claim ``/`` and ``.json`` paths other facades share.
    """

    routes = [
        route._replace(url=route.url.replace("{trailing_slash}", "/?"))
        if isinstance(route, Route) and route.name == "{basename}-list" else route
        for route in SimpleRouter.routes
    ]

    def __init__(self):
        super().__init__()
        self.trailing_slash = "(?:/)?"

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        # DRF's default ``[^/.]+`` leaves an id like "0.5" or a name with a dot
        # to Django's HTML 404; any segment reaches the viewset, which answers
        # a JSON 404 (or finds the job named "nightly.backup").
        if not hasattr(viewset, "lookup_value_regex"):
            viewset.lookup_value_regex = "[^/]+"
        return super().get_lookup_regex(viewset, lookup_prefix)
