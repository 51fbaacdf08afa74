"""What every admin page shows of the operations console (loaded by
``admin/base_site.html``): the operator-warning banner and the Flower link."""
from __future__ import annotations

import logging

from django import template
from django.conf import settings

register = template.Library()
logger = logging.getLogger(__name__)


@register.inclusion_tag("admin/scheduling/operator_warnings.html", takes_context=True)
def operator_warnings(context):
    """The banner: once per page (the dashboard and the base template both
    ask), for signed-in staff only, never failing the page it is on."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or not getattr(user, "is_staff", False) or getattr(request, "_ops_warnings_shown", False):
        return {"warnings": []}
    request._ops_warnings_shown = True
    from scheduling import dashboard

    try:
        state = getattr(request, "_ops_cluster_state", None)
        warnings = dashboard.operator_warnings(state)
    except Exception:  # a banner must never take a page down
        logger.exception("operator warnings not computed")
        warnings = []
    return {"warnings": warnings}


@register.simple_tag
def flower_url() -> str:
    """Flower's address when one runs beside the project (``FLOWER_URL``;
    ``./manage runstack --flower`` sets it), else empty."""
    return getattr(settings, "FLOWER_URL", "") or ""
