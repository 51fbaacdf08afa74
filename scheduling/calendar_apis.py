"""/api/v1/calendars: the days and hours jobs skip (scheduling.calendars).

Thin, like scheduling.apis: a serializer validates, one service or selector
acts. Everyone signed in reads the calendars they can see (theirs, their
organization's); creating, changing and deleting them is for superusers.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response

from jobsite.parsers import StrictJSONParser
from jobsite.tenancy import scope_to_user
from scheduling import services
from scheduling.apis import PageEnvelopeSchema, api_field_names
from scheduling.models import Calendar
from scheduling.pagination import paginate
from scheduling.code_serializers import CalendarPageSerializer, CalendarSerializer, ManifestCalendarSerializer
from scheduling.serializers import DetailSerializer, ErrorSerializer, PageQuerySerializer, query_params, request_body

_400 = OpenApiResponse(ErrorSerializer, description="Invalid input; `detail` names the field.")
_403 = OpenApiResponse(ErrorSerializer, description="Only superusers can create or modify calendars.")
_404 = OpenApiResponse(ErrorSerializer, description="No such calendar visible to you.")


class IsSuperuserToModify(BasePermission):
    message = "Only superusers can create or modify calendars."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or bool(request.user and request.user.is_superuser)


def calendar_list(*, user):
    return scope_to_user(Calendar.objects.prefetch_related("jobs"), user).order_by("name")


class CalendarViewSet(viewsets.GenericViewSet):
    """Calendars: dates, date ranges, weekly windows, public holidays and iCalendar files that jobs skip."""

    queryset = Calendar.objects.none()  # types the {id} path parameter only
    serializer_class = CalendarSerializer
    permission_classes = [IsAuthenticated, IsSuperuserToModify]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None
    schema = PageEnvelopeSchema()

    def get_object(self) -> Calendar:
        pk = str(self.kwargs["pk"])
        calendar = calendar_list(user=self.request.user).filter(pk=pk).first() if pk.isdigit() else None
        if calendar is None:
            raise exceptions.NotFound("No such calendar.")
        return calendar

    @extend_schema(tags=["calendars"], summary="List calendars", parameters=[PageQuerySerializer],
                   operation_id="api_v1_calendars_list",
                   responses={200: CalendarPageSerializer})
    def list(self, request):
        params = query_params(PageQuerySerializer, request)
        page = paginate(calendar_list(user=request.user), page=params["page"], size=params["size"])
        return Response(page.envelope(CalendarSerializer(page.items, many=True).data))

    @extend_schema(tags=["calendars"], summary="Create a calendar", request=ManifestCalendarSerializer,
                   responses={201: CalendarSerializer, 400: _400, 403: _403})
    def create(self, request):
        data = request_body(ManifestCalendarSerializer, request)
        with api_field_names():
            calendar = services.calendar_create(actor=request.user, **data)
        return Response(CalendarSerializer(calendar).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["calendars"], summary="Get a calendar", responses={200: CalendarSerializer, 404: _404})
    def retrieve(self, request, pk=None):
        return Response(CalendarSerializer(self.get_object()).data)

    @extend_schema(tags=["calendars"], summary="Change a calendar (partial)", request=ManifestCalendarSerializer(partial=True),
                   responses={200: CalendarSerializer, 400: _400, 403: _403, 404: _404})
    def partial_update(self, request, pk=None):
        calendar = self.get_object()
        data = request_body(ManifestCalendarSerializer, request, partial=True)
        with api_field_names():
            calendar = services.calendar_update(calendar=calendar, data=data, actor=request.user)
        return Response(CalendarSerializer(calendar).data)

    @extend_schema(tags=["calendars"], summary="Change a calendar (partial)", request=ManifestCalendarSerializer(partial=True),
                   responses={200: CalendarSerializer, 400: _400, 403: _403, 404: _404})
    def update(self, request, pk=None):
        return self.partial_update(request, pk=pk)

    @extend_schema(tags=["calendars"], summary="Delete a calendar", responses={200: DetailSerializer, 403: _403, 404: _404})
    def destroy(self, request, pk=None):
        calendar = self.get_object()
        services.calendar_delete(calendar=calendar, actor=request.user)
        return Response({"detail": f"Calendar {pk} deleted."})
