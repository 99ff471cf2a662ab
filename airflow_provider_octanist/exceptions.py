"""
Errors raised by the Octanist provider.

Catch :class:`OctanistError` for everything, or one of its subclasses for the case you handle::

    OctanistError                  every failure talking to Octanist (an AirflowException)
    ├── OctanistAuthError          401/403: the key is wrong, revoked or not allowed to do this
    ├── OctanistNotFoundError      404: no such lead (or no lead matches the identifiers)
    ├── OctanistValidationError    400/409/422: Octanist refused the request as sent
    │   └── OctanistConflictError  409: e.g. an email matches several leads, bulk updates are off
    ├── OctanistRateLimitError     429 still returned after every retry
    ├── OctanistServerError        5xx still returned after every retry
    ├── OctanistResponseError      a body that is not the documented JSON
    └── OctanistConnectionError    no answer: refused, reset, DNS, TLS (after every retry)
        └── OctanistTimeoutError   no answer in time

Every error carries ``status_code``, ``code`` (the API's error code, e.g. ``NOT_FOUND``),
``message`` (Octanist's own words, or ours when it sent none) and ``request_id`` (``meta.requestId``,
quote it to Octanist support). None of them ever contains the API key.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException


class OctanistError(AirflowException):  # type: ignore[misc]
    """Base class of every error this provider raises when talking to Octanist."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        details: Any = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.hint = hint
        self.details = details
        super().__init__(self._text())

    def _text(self) -> str:
        facts = [str(self.status_code) if self.status_code else None, self.code]
        where = " ".join(f for f in facts if f)
        if self.request_id:
            where = f"{where}, request {self.request_id}" if where else f"request {self.request_id}"
        text = f"{self.message} ({where})" if where else self.message
        return f"{text}. {self.hint}" if self.hint else text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling (used when errors cross
        # process boundaries, e.g. in triggerer or executor logs), so rebuild explicitly.
        fields = {
            "message": self.message,
            "status_code": self.status_code,
            "code": self.code,
            "request_id": self.request_id,
            "hint": self.hint,
            "details": self.details,
        }
        return (_rebuild, (type(self), fields), self.__dict__.copy())


def _rebuild(cls: type[OctanistError], fields: dict[str, Any]) -> OctanistError:
    return cls(**fields)


class OctanistAuthError(OctanistError):
    """Octanist rejected the API key (401) or did not allow the action (403)."""


class OctanistNotFoundError(OctanistError):
    """The lead, or the lead matching the given identifiers, does not exist (404)."""


class OctanistValidationError(OctanistError):
    """Octanist refused the request as sent (400, 409 or 422); retrying it unchanged cannot help."""


class OctanistConflictError(OctanistValidationError):
    """The request conflicts with the data (409), e.g. an email matches several leads."""


class OctanistRateLimitError(OctanistError):
    """Octanist kept answering 429 Too Many Requests after every retry."""


class OctanistServerError(OctanistError):
    """Octanist kept answering with a 5xx server error after every retry."""


class OctanistResponseError(OctanistError):
    """Octanist answered with a body that is not the documented JSON."""


class OctanistConnectionError(OctanistError):
    """No answer from Octanist: the connection was refused, reset or could not be set up."""

    def __init__(self, message: str, *, may_have_reached_server: bool = True, **kwargs: Any) -> None:
        self.may_have_reached_server = may_have_reached_server
        super().__init__(message, **kwargs)


class OctanistTimeoutError(OctanistConnectionError):
    """Octanist did not answer within the configured timeout."""


__all__ = [
    "OctanistAuthError",
    "OctanistConflictError",
    "OctanistConnectionError",
    "OctanistError",
    "OctanistNotFoundError",
    "OctanistRateLimitError",
    "OctanistResponseError",
    "OctanistServerError",
    "OctanistTimeoutError",
    "OctanistValidationError",
]
