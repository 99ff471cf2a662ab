"""
Writing lead outcomes back into Octanist, one update per row, every row accounted for.

What the object-storage and the SQL write-back share: what a row means (``parse_row``), the
concurrent sender that adapts to 429 (``Sender``), the accounting and its summary (``Tally``), the
report of one JSON line per row, progress in the log, and the operator base that ties them together.
Rows come from an iterator and at most ``max_concurrency`` updates are in flight at any moment, so
memory stays flat whatever the number of rows.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeAlias

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._checks import whole_number
from airflow_provider_octanist.operators.octanist import _OctanistOperator
from airflow_provider_octanist.transfers import _storage
from airflow_provider_octanist.transfers._readers import Unreadable, UnreadableInput

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from concurrent.futures import Future

    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.transfers._state import WriteBackState

LEAD_KEYS = ("id", "email", "phone")
"""The columns that name a row's lead, in the order the API tries them."""
CHANGES = ("status", "value", "note", "lossReason")
"""The columns that carry a row's change."""
COLUMNS = LEAD_KEYS + CHANGES
_ARGUMENT = {"id": "lead_id", "lossReason": "loss_reason"}
"""``update_lead`` arguments whose name differs from the API's (the column's) name."""

UPDATED, VALID = "updated", "valid"
INVALID, NOT_FOUND, AMBIGUOUS, FAILED = "invalid", "not_found", "ambiguous", "failed"
NOT_SENT = "not_sent"
"""A valid row the run did not apply because it stopped first (a refused key, for one)."""
UNCHANGED = "unchanged"
"""With a state: the row equals what was last applied to its lead; not sent."""
UNKNOWN = "unknown"
"""With a state: a note that may or may not be on the lead; never sent again automatically."""
GIVEN_UP = "given_up"
"""With a state: a row carried over longer than ``carry_over_for``; no longer sent."""
NOT_APPLIED = (INVALID, NOT_FOUND, AMBIGUOUS, FAILED, UNKNOWN, GIVEN_UP)
"""The outcomes counted against ``max_failed_rows`` and ``max_failed_ratio``."""
SENT = (UPDATED, FAILED, UNKNOWN)
"""The outcomes of a row whose update reached Octanist or may have (a failed one's is unknown)."""
RECONCILED = (UPDATED, UNCHANGED, NOT_FOUND, INVALID, FAILED, UNKNOWN)
"""The right side of the summary's sum, always written; the other outcomes join it when they occur."""
ALSO_RECONCILED = (AMBIGUOUS, NOT_SENT, GIVEN_UP, VALID)

MAX_CONCURRENCY = 64
"""The most updates a task may keep in flight: Octanist documents no rate limit, so be a good citizen."""
PROGRESS_SECONDS = 5.0
"""Seconds between two progress lines in the task log."""
PROBLEMS_NAMED = 5
"""Rows named, with their reasons, in the error of a task that fails."""
REPORT_LINES = 1_000
"""Report lines encoded and written together."""
WAIT_SECONDS = 1.0
"""Seconds the sender waits for an answer before it calls ``waiting`` (a state's heartbeat)."""
CARRY_OVER_FOR = timedelta(days=7)
"""How long a row not applied is sent again, with a state, before it is given up."""
UNKNOWN_VERDICTS = ("applied", "not_applied")


class InvalidRowError(ValueError):
    """A row that cannot become an update; its text is the reason, for the report."""


def parse_row(row: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Return ``(lead, arguments)`` of one row: the column that names its lead, and ``update_lead``'s arguments.

    Empty strings (empty CSV cells) and ``None`` (SQL NULL) are not given. The lead is named by
    ``id``, else ``email``, else ``phone``, as the API does, and only that column is sent.

    :param row: column name to value.
    :raises InvalidRowError: naming what is wrong: an unknown column, no lead named, or what
        ``update_lead`` refuses (an unknown status, a ``lossReason`` without ``lost``, a value
        that is not a number...).
    """
    from airflow_provider_octanist._api.bodies import update_lead_body

    unknown = [str(name) for name in row if name not in COLUMNS]
    if unknown:
        raise InvalidRowError(
            f"unknown column(s) {', '.join(map(repr, sorted(unknown)))}: a row takes "
            f"{', '.join(COLUMNS)}, spelled as the API spells them"
        )
    given = {name: _plain(value) for name, value in row.items() if value is not None and value != ""}
    key = next((name for name in LEAD_KEYS if name in given), None)
    if key is None:
        raise InvalidRowError("names no lead: give id, email or phone")
    arguments = {_ARGUMENT.get(name, name): given[name] for name in (key, *CHANGES) if name in given}
    try:
        update_lead_body(arguments)
    except ValueError as exc:
        raise InvalidRowError(str(exc)) from None
    return {key: given[key]}, arguments


def _plain(value: Any) -> Any:
    """A database's exact number (``Decimal``) as its text, which the API reads as a number."""
    return str(value) if isinstance(value, Decimal) else value


def _reportable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its text (a report line must always encode)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Outcome:
    """What happened to one row (``row`` is ``None`` for a row carried over from an earlier run)."""

    row: int | None
    outcome: str
    lead: Mapping[str, Any] | None = None
    lead_id: str | None = None
    leads_updated: int | None = None
    error: Mapping[str, Any] | None = None
    carried_since: str | None = None
    """When a row carried over was first not applied."""
    may_have_applied: bool = field(default=False, compare=False)
    """A failed update that may have reached Octanist (a timeout, a reset, a 5xx)."""

    def line(self) -> dict[str, Any]:
        """The row's line in the report."""
        line: dict[str, Any] = {"row": self.row, "outcome": self.outcome}
        if self.carried_since is not None:
            line["carried_since"] = self.carried_since
        if self.lead is not None:
            line["lead"] = {name: _reportable(value) for name, value in self.lead.items()}
        if self.lead_id is not None:
            line["lead_id"] = self.lead_id
        if self.leads_updated is not None:
            line["leads_updated"] = self.leads_updated
        if self.error is not None:
            line["error"] = dict(self.error)
        return line

    def describe(self) -> str:
        """The row in the error of a failed task: number, lead, outcome and reason."""
        lead = "".join(f" ({name} {value})" for name, value in (self.lead or {}).items())
        reason = str((self.error or {}).get("message", "")).rstrip(".")
        row = f"row {self.row}" if self.row is not None else "a row carried over"
        return f"{row}{lead}: {self.outcome}" + (f": {reason}" if reason else "")


Item: TypeAlias = "Outcome | tuple[int, dict[str, Any], dict[str, Any]]"
"""What the sender is given: a row's outcome known already, or ``(row, lead, arguments)`` to send."""


def send_one(hook: OctanistHook, row: int, lead: Mapping[str, Any], arguments: Mapping[str, Any]) -> Outcome:
    """
    Send one row's update; return its outcome. A rejected key is no row's fault: it is raised.

    :param hook: the hook shared by every sending thread.
    :param row: the row's number (1-based), for the report.
    :param lead: the column that names the lead, for the report.
    :param arguments: ``update_lead``'s arguments.
    """
    from airflow_provider_octanist.exceptions import (
        OctanistAuthError,
        OctanistConflictError,
        OctanistError,
        OctanistNotFoundError,
        OctanistRateLimitError,
        OctanistValidationError,
    )

    try:
        answer = hook.update_lead(**arguments)
    except OctanistAuthError:
        raise
    except OctanistError as exc:
        if isinstance(exc, OctanistNotFoundError):
            outcome = NOT_FOUND
        elif isinstance(exc, OctanistConflictError):
            outcome = AMBIGUOUS
        elif isinstance(exc, OctanistValidationError):
            outcome = INVALID  # Octanist refused what the checks here let through
        else:
            outcome = FAILED
        reached = not isinstance(exc, OctanistRateLimitError) and getattr(
            exc, "may_have_reached_server", True
        )
        return Outcome(
            row, outcome, lead, error=_error_of(exc), may_have_applied=outcome == FAILED and reached
        )
    updated = answer.get("leadsUpdated")
    lead_id = answer.get("leadId")
    return Outcome(
        row,
        UPDATED,
        lead,
        lead_id=lead_id if isinstance(lead_id, str) else None,
        leads_updated=updated if isinstance(updated, int) and not isinstance(updated, bool) else None,
    )


def _error_of(exc: Exception) -> dict[str, Any]:
    """An error as a report line carries it: its text and, from Octanist, status, code and request id."""
    error = {
        "message": str(exc),
        "status": getattr(exc, "status_code", None),
        "code": getattr(exc, "code", None),
        "request_id": getattr(exc, "request_id", None),
    }
    return {k: v for k, v in error.items() if v is not None}


def not_sent(item: Item, reason: str) -> Outcome:
    """A row read after the run stopped: an invalid one stays invalid, a valid one is not sent."""
    if isinstance(item, Outcome):
        return item
    return Outcome(item[0], NOT_SENT, item[1], error={"message": reason})


class Sender:
    """
    Sends updates from a pool of threads over one hook, never more in flight than its window.

    The window starts at ``max_concurrency``. A 429 from Octanist halves it (once per round of
    requests: the 429s of one burst are one signal), and each update that goes through widens it
    by ``1 / window``, about one more request in flight per round: additive increase,
    multiplicative decrease, as TCP does. The requests themselves are retried by the hook, which
    honours ``Retry-After``; the sender only decides how many go at once.

    :param hook: the hook to send with; its ``on_rate_limited`` is set to the sender's.
    :param max_concurrency: the widest window.
    """

    def __init__(self, hook: OctanistHook, max_concurrency: int) -> None:
        self.hook = hook
        self.ceiling = max_concurrency
        self.window = float(max_concurrency)
        self.rate_limited = 0
        """429 answers seen."""
        self.narrowest = max_concurrency
        """The narrowest the window has been."""
        self._lock = threading.Lock()
        self._since_cut = max_concurrency  # a first 429 always cuts
        hook.on_rate_limited = self._on_rate_limited

    def _on_rate_limited(self, retry_after: float | None) -> None:
        # Called from the sending threads, by the hook, on every 429 (retried or not).
        with self._lock:
            self.rate_limited += 1
            if self._since_cut >= self.window:
                self.window = max(1.0, self.window / 2)
                self.narrowest = min(self.narrowest, int(self.window))
                self._since_cut = 0

    def _went_through(self) -> None:
        with self._lock:
            self._since_cut += 1
            self.window = min(float(self.ceiling), self.window + 1 / self.window)

    def run(
        self,
        items: Iterable[Item],
        record: Callable[[Outcome], None],
        *,
        before_send: Callable[[int], None] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> Exception | None:
        """
        Send every ``(row, lead, arguments)`` of ``items`` and ``record`` each outcome, in this thread.

        An ``Outcome`` among the items (a row that is not sent) is recorded as it comes. Items are
        drawn only when the window has room, so no more than the window is ever held.
        ``before_send(row)`` is called right before a row's update goes out (a state writes ahead
        there), ``waiting()`` about every second while no answer comes (its heartbeat); both in
        this thread, and an error of either stops the sending as an error reading ``items`` does.

        Returns what stopped the sending before the end of ``items``, or ``None``: a refused key
        (its rows are recorded ``not_sent``), an error reading ``items``, any other error of a
        sending thread (its row is recorded ``failed``: it may have gone through). The updates
        already in flight are waited for and recorded first; no item is drawn after it.
        """
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from airflow_provider_octanist.exceptions import OctanistAuthError

        # The connection is read and the session opened here, once, before any thread needs them:
        # a task may look a connection up from its own thread only (Airflow 3.0's task runner
        # answers one request at a time), and threads racing to open the session would each open one.
        self.hook.settings  # noqa: B018 - read for its side effect
        self.hook.get_conn()
        in_flight: dict[Future[Outcome], tuple[int, dict[str, Any], dict[str, Any]]] = {}
        stop: Exception | None = None

        def collect() -> None:
            nonlocal stop
            done: set[Future[Outcome]] = set()
            while not done:
                done, _ = wait(in_flight, timeout=WAIT_SECONDS, return_when=FIRST_COMPLETED)
                if not done and waiting is not None:
                    try:
                        waiting()
                    except Exception as exc:
                        stop = stop or exc
            for future in done:
                row, lead, _arguments = in_flight.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:
                    stop = stop or exc
                    refused = isinstance(exc, OctanistAuthError)
                    outcome = Outcome(
                        row,
                        NOT_SENT if refused else FAILED,
                        lead,
                        error=_error_of(exc),
                        may_have_applied=not refused,
                    )
                if outcome.outcome == UPDATED:
                    self._went_through()
                record(outcome)

        with ThreadPoolExecutor(max_workers=self.ceiling, thread_name_prefix="octanist-write-back") as pool:
            try:
                for item in items:
                    if isinstance(item, Outcome):
                        record(item)
                        continue
                    while len(in_flight) >= max(1, int(self.window)):
                        collect()
                    if stop is None and before_send is not None:
                        try:
                            before_send(item[0])
                        except Exception as exc:
                            stop = exc
                    if stop is not None:
                        record(not_sent(item, f"not sent: the run stopped ({stop})"))
                        break
                    in_flight[pool.submit(send_one, self.hook, *item)] = item
            except Exception as exc:  # the rows could not be read on (or the task was stopped)
                stop = stop or exc
            while in_flight:
                collect()
        return stop


class Tally:
    """Counts the outcomes, keeps the first few problems, and says whether the task must fail."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rows = 0
        """Rows read from the input."""
        self.carried_over = 0
        """Rows taken from the state: carried over from earlier runs."""
        self.leads_updated = 0
        self.rate_limited = 0
        self.problems: list[Outcome] = []
        self.stopped_by: str | None = None
        """Why the run stopped before the end of its input, if it did."""

    def add(self, outcome: Outcome) -> None:
        """Count one row's outcome."""
        if outcome.carried_since is None:
            self.rows += 1
        else:
            self.carried_over += 1
        self.counts[outcome.outcome] += 1
        if outcome.outcome == UPDATED:
            self.leads_updated += outcome.leads_updated if outcome.leads_updated is not None else 1
        elif outcome.outcome in NOT_APPLIED and len(self.problems) < PROBLEMS_NAMED:
            self.problems.append(outcome)

    @property
    def sent(self) -> int:
        """Rows whose update reached Octanist or may have: sending them again could apply them twice."""
        return sum(self.counts[name] for name in SENT)

    @property
    def not_applied(self) -> int:
        """Rows invalid, not found, ambiguous, failed, unknown or given up."""
        return sum(self.counts[name] for name in NOT_APPLIED)

    @property
    def adds_up(self) -> bool:
        """Whether every row read or carried over has exactly one outcome."""
        return self.rows + self.carried_over == sum(self.counts.values())

    def reconciliation(self) -> str:
        """The summary's sum, in words and in numbers: ``rows + carried_over = updated + ...``."""
        terms = [*RECONCILED, *(name for name in ALSO_RECONCILED if self.counts[name])]
        numbers = " + ".join(str(self.counts[name]) for name in terms)
        verdict = "adds up" if self.adds_up else "DOES NOT ADD UP"
        return (
            f"rows + carried_over = {' + '.join(terms)}: {self.rows} + {self.carried_over} = {numbers} "
            f"({verdict})"
        )

    def summary(self, *, dry_run: bool, report: str | None, state: str | None = None) -> dict[str, Any]:
        """The task's summary (XCom): how many rows, and how each ended."""
        return {
            "rows": self.rows,
            "carried_over": self.carried_over,
            "updated": self.counts[UPDATED],
            "unchanged": self.counts[UNCHANGED],
            "not_found": self.counts[NOT_FOUND],
            "ambiguous": self.counts[AMBIGUOUS],
            "invalid": self.counts[INVALID],
            "failed": self.counts[FAILED],
            "unknown": self.counts[UNKNOWN],
            "given_up": self.counts[GIVEN_UP],
            "valid": self.counts[VALID],
            "not_sent": self.counts[NOT_SENT],
            "stopped_by": self.stopped_by,
            "leads_updated": self.leads_updated,
            "rate_limited": self.rate_limited,
            "dry_run": dry_run,
            "report_path": report,
            "state_path": state,
            "reconciliation": self.reconciliation(),
        }


class Progress:
    """
    Logs how far a write-back is, at most once per ``interval`` seconds, so a long one is never silent.

    :param log: the task's logger.
    :param interval: seconds between two lines; 0 logs after every row.
    :param clock: monotonic seconds (injected in tests).
    """

    def __init__(self, log: Any, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._next = self.started + interval

    def tick(self, tally: Tally) -> None:
        """Log a progress line if the interval has passed since the last one."""
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval
        elapsed = now - self.started
        self.log.info(
            "Write-back: %d row(s) done in %.0f s (%.0f rows/s): %d updated, %d not applied so far.",
            tally.rows,
            elapsed,
            tally.rows / elapsed if elapsed > 0 else 0.0,
            tally.counts[UPDATED],
            tally.not_applied,
        )


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
        stop: Exception | None = None

        def run(stream: IO[bytes] | None) -> None:
            nonlocal stop
            lines: list[dict[str, Any]] = []
            writer = None
            if stream is not None:
                from airflow_provider_octanist.transfers._formats import JsonLinesWriter

                writer = JsonLinesWriter(stream, None)

            def record(outcome: Outcome) -> None:
                if state is not None:
                    outcome = state.settle(outcome)
                tally.add(outcome)
                if writer is not None:
                    lines.append(outcome.line())
                    if len(lines) >= REPORT_LINES:
                        writer.write(lines)
                        lines.clear()
                progress.tick(tally)

            items = iter(self._items(rows) if state is None else state.items(self._items(rows)))
            try:
                stop = self._send(items, record, tally, state)
            except Exception as exc:  # the rows could not be read on (or the task was stopped)
                stop = exc
            if stop is not None:
                tally.stopped_by = str(stop)
                if not (tally.sent or isinstance(stop, UnreadableInput)):
                    raise stop  # nothing reached Octanist: a retry is harmless, and writes the report
                self._account_for_the_rest(items, stop, record)
            if writer is not None:
                writer.write(lines)
                writer.close()

        try:
            if target is None:
                run(None)
            else:
                _storage.write_whole(target, run)
        finally:
            if state is not None:
                state.close()
        summary = self.summary = tally.summary(
            dry_run=self.dry_run, report=report, state=None if state is None else state.where
        )
        self._log_end(tally, state, stop, source, time.monotonic() - progress.started)
        self._verdict(tally, stop, source, report)
        return summary

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

        if not isinstance(stop, OctanistAuthError):
            return
        reason = f"not sent: the run stopped ({stop})"
        try:
            for item in items:
                record(not_sent(item, reason))
        except Exception as exc:
            self.log.warning("The rest of the input could not be read to account for it: %s", exc)

    @staticmethod
    def _items(
        rows: Iterable[Mapping[Any, Any] | Unreadable],
    ) -> Iterable[Item]:
        """Number the rows; an invalid one becomes its outcome, a valid one ``(row, lead, arguments)``."""
        for number, row in enumerate(rows, start=1):
            if isinstance(row, Unreadable):
                yield Outcome(number, INVALID, error={"message": row.reason})
                continue
            try:
                lead, arguments = parse_row(row)
            except InvalidRowError as exc:
                lead = {k: row[k] for k in LEAD_KEYS if row.get(k) not in (None, "")}
                yield Outcome(
                    number, INVALID, dict(list(lead.items())[:1]) or None, error={"message": str(exc)}
                )
                continue
            yield number, lead, arguments
