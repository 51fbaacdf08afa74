"""One error type for services and one DRF handler that maps every error to
``{"detail": ...}`` with the status the seeds show (HackSoft style)."""
from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ErrorCode(StrEnum):
    """Stable codes of the project-wide errors (clients may branch on ``code``).
    Each app adds its own enum in its ``errors`` module."""

    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    CREDENTIALS_UNREADABLE = "credentials_unreadable"


class ApplicationError(Exception):
    """A business rule said no. ``status`` is the HTTP status the API answers."""

    def __init__(self, message: str, *, status: int = 400, code: StrEnum | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = str(code) if code is not None else None
        self.extra = extra or {}


class NotFound(ApplicationError):
    def __init__(self, message: str = "Not found."):
        super().__init__(message, status=404, code=ErrorCode.NOT_FOUND)


class Forbidden(ApplicationError):
    """Someone else's object, where a facade's contract answers 403 rather than 404."""

    def __init__(self, message: str = "You don't have permission to access this object."):
        super().__init__(message, status=403, code=ErrorCode.FORBIDDEN)


class Conflict(ApplicationError):
    def __init__(self, message: str, *, code: StrEnum = ErrorCode.CONFLICT, **kwargs):
        super().__init__(message, status=409, code=code, **kwargs)


def flatten_errors(detail) -> str:
    """Turn DRF/Django error structures into one readable sentence that names
    the field(s) at fault: ``schedule_expression: Invalid cron expression ...``."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = flatten_errors(value)
            parts.append(text if field in ("non_field_errors", "__all__", "detail") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, (list, tuple)):
        return " ".join(flatten_errors(item) for item in detail)
    return str(detail)


def django_validation_error_detail(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {field: [m for e in errs for m in e.messages] for field, errs in error.error_dict.items()}
    return error.messages


def validation_error_message(error: DjangoValidationError) -> str:
    """One line naming the fields at fault, as the API's ``detail`` shows it (CLI, admin)."""
    return flatten_errors(django_validation_error_detail(error))


def error_message(exc: Exception) -> str:
    """One readable line for any service error (CLI, admin messages)."""
    if isinstance(exc, DjangoValidationError):
        return validation_error_message(exc)
    if isinstance(exc, ApplicationError):
        return exc.message
    return str(exc)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_validation_error_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message}
        if exc.code:
            body["code"] = exc.code
        body.update(exc.extra)
        return Response(body, status=exc.status)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        # Keep the field map for clients, and a readable detail naming fields.
        errors = response.data
        response.data = {"detail": flatten_errors(errors), "errors": errors}
    elif isinstance(exc, exceptions.ParseError):
        response.data = {"detail": f"Malformed request body: {exc.detail}"}
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response
