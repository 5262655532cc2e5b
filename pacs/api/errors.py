"""One error shape for the whole API [WEB-1]: ``{"message": "...", "errors": {field: [...]}}``."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {
            str(key): [str(item) for item in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": [str(item) for item in detail]}
    return {}


def exception_handler(exc, context) -> Response | None:
    """Map DRF and Django exceptions to the JSON error body."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(detail)
        message = "Invalid input."
        if list(errors) == ["non_field_errors"] and len(errors["non_field_errors"]) == 1:
            message = errors["non_field_errors"][0]
        elif errors:
            first_field, first_errors = next(iter(errors.items()))
            message = f"Invalid input: {first_field}: {first_errors[0]}"
    elif isinstance(detail, dict):
        message = str(detail.get("detail", "Request failed."))
        errors = _field_errors({key: value for key, value in detail.items() if key != "detail"})
    else:
        errors = {}
        message = str(detail)
    response.data = {"message": message, "errors": errors}
    _avoid_browser_login_prompt(response, context)
    return response


def _avoid_browser_login_prompt(response: Response, context) -> None:
    """Answer a Basic challenge only to clients that tried Basic: browsers show their own
    login dialog on ``WWW-Authenticate: Basic``, which must not pop up over the console."""
    challenge = response.get("WWW-Authenticate", "")
    request = context.get("request")
    authorization = request.META.get("HTTP_AUTHORIZATION", "") if request is not None else ""
    if challenge.startswith("Basic") and not authorization.lower().startswith("basic"):
        response["WWW-Authenticate"] = 'Session realm="api"'
