"""
The base of the write-back operators: their parameters, checked, and the run that ties together the
rows (``_rows``), the sender (``_sender``), the state (``_state``) and the accounting (``_report``).

Rows come from an iterator and at most ``max_concurrency`` updates are in flight at any moment, so
memory stays flat whatever the number of rows. The modules of a run are imported when it runs.
"""

from __future__ import annotations

import inspect
import math
import time
from datetime import timedelta
from functools import partial
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._checks import whole_number
from airflow_provider_octanist.operators.octanist import _OctanistOperator
from airflow_provider_octanist.transfers import _storage
from airflow_provider_octanist.transfers._readers import Unreadable, UnreadableInput

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.transfers._outcomes import Item, Outcome
    from airflow_provider_octanist.transfers._report import Progress, Tally
    from airflow_provider_octanist.transfers._state import WriteBackState

MAX_CONCURRENCY = 64
"""The most updates a task may keep in flight: Octanist documents no rate limit, so be a good citizen."""
PROGRESS_SECONDS = 5.0
"""Seconds between two progress lines in the task log."""
CARRY_OVER_FOR = timedelta(days=7)
"""How long a row not applied is sent again, with a state, before it is given up."""
UNKNOWN_VERDICTS = ("applied", "not_applied")
"""What ``resolve_unknown`` may say of a note whose outcome is unknown."""

PARAMETERS = """
:param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
:param storage_conn_id: the Airflow connection of the store (e.g. ``aws_default``) of URL paths:
    ``report_path``, ``state_path`` and, for an object to read, ``path``.
:param max_concurrency: the most updates in flight at once (1-64, default 8).
:param max_failed_rows: rows that may be invalid, not found, ambiguous or failed before the
    task fails (default 0: any such row fails it, once every row has been tried).
:param max_failed_ratio: besides ``max_failed_rows``, the share of the rows (read and carried
    over) that may go wrong, e.g. ``0.01``: the task fails only past both (default ``None``).
:param report_path: where to write one JSON line per row with its outcome: a URL or an
    ``ObjectStoragePath`` (templated); written whole or not at all, like an export.
:param state_path: where the task keeps what it applied, between runs: a URL or an
    ``ObjectStoragePath`` (templated). With it, unchanged rows are not sent, rows not applied
    are sent again on later runs, a note is never sent twice, and a run that died resumes
    (docs/write-back.md).
:param carry_over_for: how long a row not applied is sent again, with ``state_path``, before
    it is given up (default 7 days).
:param resolve_unknown: with ``state_path``, notes of unknown outcome you have checked: a
    lead's id, email or phone to ``"applied"`` (the note is on the lead) or ``"not_applied"``
    (send the row again).
:param dry_run: check every row and send nothing (with ``state_path``, the state is read to
    tell unchanged rows, never written).
:returns: ``{"rows", "carried_over", "updated", "unchanged", "not_found", "ambiguous",
    "invalid", "failed", "unknown", "given_up", "valid", "not_sent", "stopped_by",
    "leads_updated", "rate_limited", "dry_run", "report_path", "state_path",
    "reconciliation"}``, also pushed to XCom.
"""
"""The parameters every write-back operator takes, and what it returns: the one text of their docs."""


_Operator = TypeVar("_Operator", bound=type)


def with_write_back_parameters(cls: _Operator) -> _Operator:
    """Append ``PARAMETERS`` to a write-back operator's docstring, after the parameters of its own."""
    cls.__doc__ = inspect.cleandoc(cls.__doc__ or "") + "\n" + PARAMETERS
    return cls


class _ToOctanistLeadsOperator(_OctanistOperator):
    """
    What both write-backs share: the checks, the sending, the report and the verdict.

    A subclass's ``execute`` reads its rows (dicts, or ``Unreadable``) and hands them, with a name
    for their source, to ``_write_back``. Once the rows are done, ``summary`` holds the task's
    summary, also when the task then fails, for lineage and callbacks to read.
    """

    progress_seconds: ClassVar[float] = PROGRESS_SECONDS
    """Seconds between two progress lines in the log."""

    def __init__(
        self,
        *,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        max_concurrency: int = 8,
        max_failed_rows: int = 0,
        max_failed_ratio: float | None = None,
        report_path: Any = None,
        state_path: Any = None,
        carry_over_for: timedelta = CARRY_OVER_FOR,
        resolve_unknown: Mapping[str, str] | None = None,
        storage_conn_id: str | None = None,
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        whole_number(max_concurrency, "max_concurrency", low=1, high=MAX_CONCURRENCY)
        whole_number(max_failed_rows, "max_failed_rows", low=0)
        if max_failed_ratio is not None and (
            isinstance(max_failed_ratio, bool)
            or not isinstance(max_failed_ratio, (int, float))
            or not 0 <= max_failed_ratio <= 1
        ):
            raise ValueError(
                f"max_failed_ratio must be a number from 0 to 1 (0.01 is 1%), got {max_failed_ratio!r}."
            )
        if not isinstance(dry_run, bool):
            raise ValueError(f"dry_run must be True or False, got {dry_run!r}.")
        if not isinstance(carry_over_for, timedelta) or carry_over_for <= timedelta(0):
            raise ValueError(f"carry_over_for must be a positive timedelta, got {carry_over_for!r}.")
        resolve_unknown = dict(resolve_unknown or {})
        wrong = {key: verdict for key, verdict in resolve_unknown.items() if verdict not in UNKNOWN_VERDICTS}
        if wrong:
            raise ValueError(
                f"resolve_unknown maps a lead's id, email or phone to 'applied' (the note is on the "
                f"lead) or 'not_applied' (send the row again), got {wrong!r}."
            )
        if resolve_unknown and state_path is None:
            raise ValueError(
                "resolve_unknown needs state_path: it is the state that remembers unknown notes."
            )
        for path in (report_path, state_path):
            if path is not None:
                _storage.check_path(path, storage_conn_id)
        self.max_concurrency = max_concurrency
        self.max_failed_rows = max_failed_rows
        self.max_failed_ratio = max_failed_ratio
        self.report_path = report_path
        self.state_path = state_path
        self.carry_over_for = carry_over_for
        self.resolve_unknown = resolve_unknown
        self.storage_conn_id = storage_conn_id
        self.dry_run = dry_run
        self.summary: dict[str, Any] | None = None

    # OpenLineage calls these in the task's process after ``execute``, on the same operator.
    def get_openlineage_facets_on_start(self) -> Any:
        """The rows' source in, the Octanist leads out, none for a dry run (``None`` without OpenLineage)."""
        return self._lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """As on start, with the leads updated (not the rows: one row may update several) as the row count."""
        return self._lineage(None if self.summary is None else self.summary["leads_updated"])

    def _lineage(self, updated: int | None) -> Any:
        """The ``OperatorLineage`` of this write-back: each kind of source names itself."""
        return None

    def _make_hook(self) -> OctanistHook:
        from airflow_provider_octanist.hooks.octanist import DEFAULT_POOL_SIZE, OctanistHook

        # One connection per sending thread, so none waits for a connection or opens one of its own.
        return OctanistHook(
            octanist_conn_id=self.octanist_conn_id, pool_size=max(DEFAULT_POOL_SIZE, self.max_concurrency)
        )

    def _write_back(self, rows: Iterable[Mapping[Any, Any] | Unreadable], source: str) -> dict[str, Any]:
        """Validate and send every row of ``rows``; write the report; return the summary or fail."""
        from airflow_provider_octanist.transfers._report import Progress, Tally

        target = (
            None if self.report_path is None else _storage.resolve(self.report_path, self.storage_conn_id)
        )
        report = None if target is None else _storage.describe(target)
        self.log.info(
            "Writing lead outcomes from %s into Octanist%s (up to %d at once%s).",
            source,
            " as a dry run: every row is checked, none is sent" if self.dry_run else "",
            self.max_concurrency,
            f", report to {report}" if report else "",
        )
        state = self._open_state()
        tally = Tally()
        progress = Progress(self.log, self.progress_seconds)
        run = partial(self._run, rows, state, tally, progress)
        try:
            stop = run(None) if target is None else _storage.write_whole(target, run)[0]
        finally:
            if state is not None:
                state.close()
        summary = self.summary = tally.summary(
            dry_run=self.dry_run, report=report, state=None if state is None else state.where
        )
        self._log_end(tally, state, stop, source, time.monotonic() - progress.started)
        self._verdict(tally, stop, source, report)
        return summary

    def _run(
        self,
        rows: Iterable[Mapping[Any, Any] | Unreadable],
        state: WriteBackState | None,
        tally: Tally,
        progress: Progress,
        stream: IO[bytes] | None,
    ) -> Exception | None:
        """
        Send every row, recording each outcome (and the report to ``stream``); return what stopped it.

        Raises what stopped the run when nothing reached Octanist (a retry is harmless then, and
        writes the report), unless the input itself could not be read on.
        """
        from airflow_provider_octanist.transfers._report import Recorder
        from airflow_provider_octanist.transfers._rows import numbered

        record = Recorder(tally, progress, None if state is None else state.settle, stream)
        items = iter(numbered(rows) if state is None else state.items(numbered(rows)))
        try:
            stop = self._send(items, record, tally, state)
        except Exception as exc:  # the rows could not be read on (or the task was stopped)
            stop = exc
        if stop is not None:
            tally.stopped_by = str(stop)
            if not (tally.sent or isinstance(stop, UnreadableInput)):
                raise stop  # nothing reached Octanist: a retry is harmless, and writes the report
            self._account_for_the_rest(items, stop, record)
        record.close()
        return stop

    def _log_end(
        self, tally: Tally, state: WriteBackState | None, stop: Exception | None, source: str, elapsed: float
    ) -> None:
        """The run's last lines in the log, the last one with the summary's sum."""
        summary = self.summary or {}
        if state is not None and state.stale_unknown:
            self.log.warning(
                "%d lead(s) not in this input still have a note whose outcome is unknown; see the "
                "reports of the runs that sent them, and resolve_unknown.",
                state.stale_unknown,
            )
        self.log.info(
            "Write-back of %d row(s) from %s%s %s in %.1f s: %d updated, %d unchanged, %d not found, "
            "%d ambiguous, %d invalid, %d failed, %d unknown, %d not sent. %s.",
            tally.rows,
            source,
            f" and {tally.carried_over} carried over" if tally.carried_over else "",
            "stopped" if stop is not None else "done",
            elapsed,
            summary["updated"],
            summary["unchanged"],
            summary["not_found"],
            summary["ambiguous"],
            summary["invalid"],
            summary["failed"],
            summary["unknown"],
            summary["not_sent"],
            summary["reconciliation"][:1].upper() + summary["reconciliation"][1:],
        )

    def _open_state(self) -> WriteBackState | None:
        """The task's state, loaded (and its lease taken, unless a dry run), or ``None`` without one."""
        if self.state_path is None:
            return None
        from airflow_provider_octanist.transfers._state import WriteBackState

        return WriteBackState.open(
            _storage.resolve(self.state_path, self.storage_conn_id),
            carry_over_for=self.carry_over_for,
            read_only=self.dry_run,
            resolve_unknown=self.resolve_unknown,
        )

    def _verdict(self, tally: Tally, stop: Exception | None, source: str, report: str | None) -> None:
        """Fail the task, never to be retried, when the run stopped or too many rows were not applied."""
        summary = self.summary or {}
        where = f" Every row's outcome is in the report at {report}." if report else ""
        if not tally.adds_up:
            raise AirflowFailException(
                f"The write-back from {source} does not account for every row: {summary['reconciliation']}."
                f"{where} This is a bug: please report it."
            )
        if stop is not None:
            raise AirflowFailException(
                f"The write-back from {source} stopped after {tally.rows} row(s): {stop}. "
                f"{tally.sent} row(s) had reached Octanist ({summary['updated']} updated, "
                f"{summary['failed']} failed with an outcome unknown), {summary['not_sent']} valid row(s) "
                f"were not sent.{where} "
                + (
                    "Fix the cause, then run the task again: its state sends only the rows not applied "
                    "(and no note twice)."
                    if self.state_path is not None
                    else "It is not retried: a run again would send the applied rows again (a note is "
                    "attached again each time). Fix the cause, then send only the rows not applied (report "
                    "outcomes not_sent, invalid, failed), or the whole input once you know it is safe."
                )
            ) from stop
        total = tally.rows + tally.carried_over
        allowed = self.max_failed_rows
        limits = f"max_failed_rows={self.max_failed_rows}"
        if self.max_failed_ratio is not None:
            allowed = max(allowed, math.floor(self.max_failed_ratio * total))
            limits += f" and max_failed_ratio={self.max_failed_ratio:g} ({allowed} of {total})"
        if tally.not_applied > allowed:
            named = "; ".join(problem.describe() for problem in tally.problems)
            more = tally.not_applied - len(tally.problems)
            carried = f" (and {tally.carried_over} carried over)" if tally.carried_over else ""
            raise AirflowFailException(
                f"{tally.not_applied} of {tally.rows} row(s) from {source}{carried} were not applied, "
                f"more than {limits}: {named}"
                + (f"; and {more} more" if more > 0 else "")
                + (where or ".")
                + " Fix the rows (or raise max_failed_rows) and run the task again; it was not retried "
                "because every row had been tried."
            )

    def _send(
        self,
        items: Iterator[Item],
        record: Callable[[Outcome], None],
        tally: Tally,
        state: WriteBackState | None = None,
    ) -> Exception | None:
        """Send (or in a dry run, only check) every item; return what stopped it early, if anything."""
        from airflow_provider_octanist.transfers._outcomes import VALID, Outcome
        from airflow_provider_octanist.transfers._sender import Sender

        if self.dry_run:
            for item in items:
                record(item if isinstance(item, Outcome) else Outcome(item[0], VALID, item[1]))
            return None
        with self._make_hook() as hook:
            sender = Sender(hook, self.max_concurrency)
            if state is None:
                stop = sender.run(items, record)
            else:
                stop = sender.run(items, record, before_send=state.before_send, waiting=state.heartbeat)
        tally.rate_limited = sender.rate_limited
        if sender.rate_limited:
            self.log.warning(
                "Octanist answered 429 (rate limited) %d time(s); at most %d update(s) were in flight "
                "at the narrowest.",
                sender.rate_limited,
                sender.narrowest,
            )
        return stop

    def _account_for_the_rest(
        self,
        items: Iterator[Item],
        stop: Exception,
        record: Callable[[Outcome], None],
    ) -> None:
        """
        After a stop that left the input readable (a refused key), read on: each row is ``not_sent``.

        So the report lists every row of the input, and those to send again are found in it. A stop
        that came from the input (or from the task being stopped) reads nothing more.
        """
        from airflow_provider_octanist.exceptions import OctanistAuthError
        from airflow_provider_octanist.transfers._outcomes import not_sent

        if not isinstance(stop, OctanistAuthError):
            return
        reason = f"not sent: the run stopped ({stop})"
        try:
            for item in items:
                record(not_sent(item, reason))
        except Exception as exc:
            self.log.warning("The rest of the input could not be read to account for it: %s", exc)
