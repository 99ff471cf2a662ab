"""
The retry policy of one call: what is retried, how long to wait (``Retry-After`` honoured), and
the error once it gives up. A call that must not happen twice (a lead creation, an update carrying
a note) is never replayed once it may have reached Octanist.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_octanist._api.calls import request_id_of
from airflow_provider_octanist._api.errors import error_for
from airflow_provider_octanist._backoff import TRANSIENT_STATUS, backoff_seconds
from airflow_provider_octanist._redact import scrub
from airflow_provider_octanist.exceptions import OctanistConnectionError, OctanistError, OctanistTimeoutError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_octanist._api.calls import Call
    from airflow_provider_octanist._api.settings import Settings


class Failure(NamedTuple):
    """What a request that got no answer means: why, whether it timed out, whether it may have been sent."""

    reason: str
    timeout: bool
    may_have_reached_server: bool


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Read ``Retry-After`` (delta-seconds or an HTTP date); ``None`` when absent or unreadable."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_wait(attempt: int, settings: Settings, retry_after: float | None = None) -> float:
    """
    Seconds to wait before retry number ``attempt`` (1-based) of a call.

    :func:`~airflow_provider_octanist._backoff.backoff_seconds` from the connection's
    ``retry_backoff``, capped at ``max_retry_wait``; a ``Retry-After`` from Octanist is honoured
    (also capped) and never undercut.
    """
    wait = backoff_seconds(attempt, settings.backoff, settings.max_retry_wait)
    if retry_after is not None:
        wait = max(wait, min(retry_after, settings.max_retry_wait))
    return wait


def may_retry_status(call: Call, status: int) -> bool:
    """A retryable HTTP status: 429 always (refused before any work), 5xx only for replay-safe calls."""
    if status == 429:
        return True
    return call.replay_safe and status in TRANSIENT_STATUS


MIN_ATTEMPT = 1.0
"""Seconds a first attempt gets even when the caller's deadline has passed (a last check)."""


def attempt_limit(settings: Settings, deadline: float | None, now: float, *, first: bool) -> float:
    """
    Seconds the next attempt may take in all: ``total_timeout``, cut to what is left before the
    caller's ``deadline`` (``time.time()`` seconds); a first attempt always gets :data:`MIN_ATTEMPT`
    so a caller whose deadline has just passed still gets its one last answer.
    """
    limit = settings.total_timeout
    if deadline is not None:
        left = deadline - now
        limit = min(limit, max(left, MIN_ATTEMPT if first else 0.0))
    return limit


def too_late_to_retry(wait: float, deadline: float | None, now: float) -> bool:
    """
    Whether a retry after ``wait`` seconds would leave less than :data:`MIN_ATTEMPT` before the
    caller's ``deadline``; the failure at hand is then the answer, rather than a bare timeout.
    """
    return deadline is not None and now + wait + MIN_ATTEMPT > deadline


class Attempts:
    """
    The retry policy of one call, shared by the sync and the async hook.

    Each hook gives an attempt :meth:`limit` seconds, sends, then asks :meth:`wait_after_status` or
    :meth:`wait_after_failure` how long to wait before trying again; they raise the error to give
    up with instead. (``after_status``/``after_failure`` answer ``None`` for giving up.)

    :param on_rate_limited: called with the ``Retry-After`` seconds (``None`` when absent) each
        time Octanist answers 429, retried or not, so a caller sending many calls at once can
        slow down as a whole while each call still retries on its own.
    :param deadline: the caller's moment (``time.time()`` seconds) to give up by, if any.
    """

    def __init__(
        self,
        call: Call,
        settings: Settings,
        log: Any,
        on_rate_limited: Callable[[float | None], None] | None = None,
        *,
        deadline: float | None = None,
    ) -> None:
        self.call = call
        self.settings = settings
        self.log = log
        self.on_rate_limited = on_rate_limited
        self.deadline = deadline
        self.retries = 0

    def limit(self) -> float:
        """Seconds the next attempt may take in all (see :func:`attempt_limit`)."""
        return attempt_limit(self.settings, self.deadline, time.time(), first=self.retries == 0)

    def wait_after_status(self, status: int, headers: Mapping[str, str], content: bytes) -> float:
        """
        Seconds to wait before retrying a non-2xx answer.

        :raises OctanistError: the answer's error, when it is not retried (any more) or no time is
            left before the deadline for another attempt.
        """
        wait = self.after_status(status, headers)
        if wait is None or too_late_to_retry(wait, self.deadline, time.time()):
            raise self.error(status, headers, content)
        return wait

    def wait_after_failure(self, failure: Failure) -> float:
        """
        Seconds to wait before retrying after no answer came.

        :raises OctanistError: the failure's error, when it is not retried (any more) or no time is
            left before the deadline for another attempt (the failure at hand is then the answer).
        """
        reason, timeout, reached = failure
        wait = self.after_failure(reason, may_have_reached_server=reached)
        if wait is None or too_late_to_retry(wait, self.deadline, time.time()):
            raise self.failure(reason, timeout=timeout, may_have_reached_server=reached) from None
        return wait

    def _next_wait(self, reason: str, retry_after: float | None = None) -> float:
        self.retries += 1
        wait = retry_wait(self.retries, self.settings, retry_after)
        self.log.warning(
            "Octanist %s: %s; retry %d of %d in %.1f s.",
            self.call.label,
            reason,
            self.retries,
            self.settings.max_retries,
            wait,
        )
        return wait

    def after_status(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before retrying a non-2xx answer, or ``None`` to give up."""
        if status == 429 and self.on_rate_limited is not None:
            self.on_rate_limited(retry_after_seconds(headers))
        if self.retries >= self.settings.max_retries or not may_retry_status(self.call, status):
            return None
        request_id = request_id_of(None, headers)
        if request_id:
            # Logged: free of the key, whatever the server put there (request_id_of capped it).
            request_id = scrub(request_id, self.settings.api_key)
        reason = f"HTTP {status}" + (f" (request {request_id})" if request_id else "")
        return self._next_wait(reason, retry_after_seconds(headers))

    def after_failure(self, reason: str, *, may_have_reached_server: bool) -> float | None:
        """Seconds to wait before retrying after no answer came, or ``None`` to give up."""
        if self.retries >= self.settings.max_retries:
            return None
        if may_have_reached_server and not self.call.replay_safe:
            return None  # it may have been processed: replaying could do it twice
        return self._next_wait(reason)

    def error(self, status: int, headers: Mapping[str, str], content: bytes) -> OctanistError:
        """The error to raise for a non-2xx answer that is not retried (any more)."""
        return error_for(self.call, status, headers, content, self.settings, retries=self.retries)

    def past_deadline(self, limit: float) -> OctanistError:
        """
        The error when an attempt ran out of ``limit`` seconds (see :func:`attempt_limit`) mid-answer.

        Never retried: a server that answers this slowly would take as long again, and a caller's
        own deadline has passed anyway.
        """
        what = (
            f"the total timeout of {limit:g} s (connect_timeout + timeout)"
            if limit >= self.settings.total_timeout
            else f"the {limit:.3g} s left before the caller's deadline"
        )
        return OctanistTimeoutError(
            f"No complete answer from Octanist for {self.call.label} within {what}",
            may_have_reached_server=True,
            hint="Octanist (or something in between) answered too slowly; raise the connection's "
            "timeout/connect_timeout extras if it is just slow.",
        )

    def failure(self, reason: str, *, timeout: bool, may_have_reached_server: bool) -> OctanistError:
        """The error to raise when no answer came and the call is not retried (any more)."""
        cls = OctanistTimeoutError if timeout else OctanistConnectionError
        tries = f" after {self.retries + 1} attempt(s)"
        if may_have_reached_server and not self.call.replay_safe:
            hint = (
                "The request may have reached Octanist, so it was not sent again to avoid doing it "
                "twice: its outcome is unknown. Check whether it took effect (e.g. with get_lead or "
                "list_leads(search=...)) before repeating it."
            )
        elif timeout:
            hint = "Raise the connection's timeout/connect_timeout extras if Octanist is just slow."
        else:
            hint = f"Check the connection's base URL ({self.settings.base_url}) and the network path to it."
        return cls(
            f"No answer from Octanist for {self.call.label}{tries}: {reason}",
            may_have_reached_server=may_have_reached_server,
            hint=hint,
        )
