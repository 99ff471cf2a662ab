"""Sensor that waits for an Octanist lead to reach a status (by default: until it is won)."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

# Not through common.compat's sdk module: its import (three modules) cost more than this module.
# The exceptions and PokeReturnValue come from there inside the methods that run in a task.
try:  # Airflow 3: the Task SDK, which every DAG file has loaded already
    from airflow.sdk import BaseSensorOperator
except ImportError:  # Airflow 2.11 (where common.compat's sdk module would look next)
    from airflow.sensors.base import BaseSensorOperator
try:  # Airflow 3.2+
    from airflow.sdk.configuration import conf
except ImportError:  # Airflow 2.11 to 3.1
    from airflow.configuration import conf

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._checks import check_conn_id, check_lead_id, check_max_consecutive_errors
from airflow_provider_octanist.statuses import LOST, WON, normalize_statuses

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context, PokeReturnValue

    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.types import Lead

__all__ = ["OctanistLeadStatusSensor"]

_DEFERRAL_GRACE = timedelta(minutes=5)
"""How long after ``timeout`` Airflow itself ends a deferral whose trigger never answered."""


def describe_lead_failure(lead: Mapping[str, Any], failure_statuses: Iterable[str]) -> str:
    """
    The message for a lead that reached a failure status: names the lead, its status and ``lossReason``.

    :param lead: the lead as Octanist returned it.
    :param failure_statuses: the statuses the sensor treats as failures.
    """
    from airflow_provider_octanist._redact import cap

    reason = lead.get("lossReason")
    because = f" (lossReason: {cap(repr(reason))})" if reason else " (no lossReason given)"
    return (
        f"Lead {lead.get('id')} is {lead.get('status')!r}{because}, a failure status "
        f"({', '.join(failure_statuses)}); it will not be retried."
    )


class OctanistLeadStatusSensor(BaseSensorOperator):  # type: ignore[misc]
    """
    Wait until an Octanist lead reaches one of ``target_statuses`` (by default until it is won).

    The lead, as Octanist returns it, becomes the task's return value (XCom) once its status is a
    target. It works in every sensor mode:

    - ``mode="poke"`` (default) keeps a worker slot and checks every ``poke_interval`` seconds;
    - ``mode="reschedule"`` frees the slot between checks;
    - ``deferrable=True`` checks once, and if the lead is not there yet hands the waiting to
      :class:`~airflow_provider_octanist.triggers.octanist.OctanistLeadStatusTrigger` in the triggerer,
      which checks every ``poke_interval`` seconds and rides out transient API errors with backoff.
      The triggers of one connection and interval in a triggerer share one change feed: one
      ``GET /leads`` per interval between them, not one request per sensor (``docs/status-feed.md``).

    A lead whose status is one of ``failure_statuses`` fails the task at once, without retries (the
    message names the lead, its status and ``lossReason``): a lost lead does not become won by
    trying again. A lead id that Octanist does not know also fails at once without retries: ids are
    issued by Octanist, so a missing one is a wrong id (a typo, a template that rendered the wrong
    value, a lead from another organization's key), and retrying would only delay the error. With
    ``soft_fail=True`` both outcomes, and a timeout, mark the task skipped instead. Errors that may
    pass (Octanist down, rate limiting) are retried by the hook; an error that outlasts those
    retries (or a rejected API key) fails the try and the task's ``retries`` apply, in every mode
    and with ``soft_fail=True`` too: an outage must never pass for a lead that will not be won.

    .. code-block:: python

        won = OctanistLeadStatusSensor(
            task_id="wait_for_won",
            lead_id="{{ params.lead_id }}",
            deferrable=True,
            poke_interval=300,
            timeout=timedelta(days=30),
        )

    :param lead_id: the lead to watch, e.g. ``lead_abc123`` (templated).
    :param target_statuses: the status(es) that end the wait successfully; default ``("won",)``.
    :param failure_statuses: the status(es) that fail the task at once; default ``("lost",)``.
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    :param deferrable: wait in the triggerer instead of a worker; defaults to the
        ``[operators] default_deferrable`` setting.
    :param max_consecutive_errors: in deferrable mode, how many failed checks in a row (each after
        the hook's own retries) the trigger tolerates before it fails the task.
    :param poke_interval: seconds between checks (also the trigger's poll interval).
    :param timeout: seconds (or a timedelta) after which the sensor gives up, in every mode.
    :param mode: ``poke`` or ``reschedule`` (ignored when deferrable).
    :param soft_fail: mark the task skipped instead of failed on a failure status, a missing lead
        or a timeout (never on an error).
    """

    template_fields: Sequence[str] = ("lead_id", "octanist_conn_id")
    ui_color = "#f4ecfb"

    def __init__(
        self,
        *,
        lead_id: str,
        target_statuses: str | Iterable[str] = (WON,),
        failure_statuses: str | Iterable[str] | None = (LOST,),
        octanist_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_consecutive_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_conn_id(octanist_conn_id)
        targets = normalize_statuses(target_statuses)
        failures = normalize_statuses(failure_statuses) if failure_statuses else ()
        both = sorted(set(targets) & set(failures))
        if both:
            raise ValueError(
                f"Status(es) {', '.join(both)} cannot be both a target and a failure status of the sensor."
            )
        check_max_consecutive_errors(max_consecutive_errors)
        if deferrable and self.poke_interval <= 0:
            raise ValueError("A deferrable OctanistLeadStatusSensor needs a poke_interval above 0 seconds.")
        self.lead_id = lead_id
        self.target_statuses = targets
        self.failure_statuses = failures
        self.octanist_conn_id = octanist_conn_id
        self.deferrable = deferrable
        self.max_consecutive_errors = max_consecutive_errors

    @cached_property
    def hook(self) -> OctanistHook:
        """The hook of ``octanist_conn_id`` (created on first use, inside the running task)."""
        from airflow_provider_octanist.hooks.octanist import OctanistHook

        return OctanistHook(octanist_conn_id=self.octanist_conn_id)

    # -- checking -------------------------------------------------------------------------------

    def _fail(self, message: str) -> NoReturn:
        """Fail the task without retries, or skip it when ``soft_fail`` (or ``never_fail``) is set."""
        from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

        if self.soft_fail or getattr(self, "never_fail", False):
            raise AirflowSkipException(f"{message} Skipping because soft_fail is set.")
        raise AirflowFailException(message)

    def _fetch_lead(self) -> Lead:
        from airflow_provider_octanist.exceptions import OctanistNotFoundError

        try:
            check_lead_id(self.lead_id)
        except ValueError as exc:  # empty, too long, control characters: it can never match a lead
            self._fail(f"Cannot watch lead {self.lead_id!r}: {exc}")
        try:
            return self.hook.get_lead(self.lead_id)
        except OctanistNotFoundError as exc:
            self._fail(f"Octanist has no lead {self.lead_id!r}: {exc}")

    def _evaluate(self, lead: Lead) -> bool:
        """Whether the lead is at a target status; fails the task when it is at a failure status."""
        status = lead.get("status")
        if status in self.target_statuses:
            self.log.info("Lead %s is %s.", lead.get("id"), status)
            return True
        if status in self.failure_statuses:
            self._fail(describe_lead_failure(lead, self.failure_statuses))
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

        self.log.info(
            "Lead %s is %s; waiting until it is %s.",
            lead.get("id"),
            cap(str(status), MAX_SERVER_WORD),
            " or ".join(self.target_statuses),
        )
        return False

    def poke(self, context: Context) -> PokeReturnValue:
        """Check the lead once; done (with the lead as XCom value) when it is at a target status."""
        from airflow.providers.common.compat.sdk import PokeReturnValue

        try:
            lead = self._fetch_lead()
        finally:
            # Reschedule mode starts a new process per check: do not leave connections behind.
            self.hook.close()
        done = self._evaluate(lead)
        return PokeReturnValue(is_done=done, xcom_value=lead if done else None)

    # -- running --------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Wait for the lead in poke/reschedule mode, or check once and defer when ``deferrable``."""
        if not self.deferrable:
            return super().execute(context)
        # The sensor's timeout counts from now, as in poke mode; the trigger gets the absolute end.
        end_time = time.time() + self.timeout
        result = self.poke(context)
        if result.is_done:
            return result.xcom_value
        from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

        self.log.info("Deferring: the triggerer checks lead %s every %s s.", self.lead_id, self.poke_interval)
        self.defer(
            trigger=OctanistLeadStatusTrigger(
                lead_id=self.lead_id,
                target_statuses=self.target_statuses,
                failure_statuses=self.failure_statuses,
                octanist_conn_id=self.octanist_conn_id,
                poll_interval=self.poke_interval,
                end_time=end_time,
                max_consecutive_errors=self.max_consecutive_errors,
            ),
            method_name="execute_complete",
            # A backstop only: the trigger itself reports the timeout at end_time.
            timeout=timedelta(seconds=self.timeout) + _DEFERRAL_GRACE,
        )
        return None  # not reached: defer() raises

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """
        Resume after the trigger fired, as Airflow does, except that an error is never skipped.

        Airflow's sensor turns any ``AirflowException`` of the resumed method into a skip when
        ``soft_fail`` is set (2.11 and every 3.x), which would let an outage or a rejected key
        pass as an outcome. Here ``soft_fail`` covers what it covers in poke mode: a failure
        status, an unknown lead and the timeout.

        :param next_method: the method to resume with (``execute_complete``).
        :param next_kwargs: its keyword arguments (the trigger's ``event``).
        :param context: the task's context.
        """
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

        # What a resumed sensor may end with that soft_fail turns into a skip: outcomes, not errors.
        outcomes = (AirflowSkipException, AirflowSensorTimeout)
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            cause = skip.__cause__
            if not self.soft_fail or cause is None or isinstance(cause, outcomes):
                raise
            raise cause from None

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Finish after the trigger fired: return the lead, or fail for any other event.

        :param context: the task's context.
        :param event: the trigger's payload.
        """
        from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout

        status = event.get("status") if isinstance(event, dict) else None
        lead = event.get("lead") if isinstance(event, dict) else None
        message = event.get("message") if isinstance(event, dict) else None
        if status == "success" and isinstance(lead, dict) and lead.get("status") in self.target_statuses:
            self.log.info("Lead %s is %s.", lead.get("id"), lead.get("status"))
            return lead
        if status == "failure" and isinstance(lead, dict) and lead.get("status") in self.failure_statuses:
            self._fail(describe_lead_failure(lead, self.failure_statuses))
        if status == "not_found":
            self._fail(message or f"Octanist has no lead {self.lead_id!r}.")
        if status == "timeout":
            raise AirflowSensorTimeout(
                message or f"Lead {self.lead_id} did not reach a target status in time."
            )
        if status == "error":
            raise AirflowException(message or f"Watching lead {self.lead_id} failed.")
        raise AirflowException(
            f"Unexpected event from the Octanist lead-status trigger for {self.lead_id}: {event!r}"
        )
