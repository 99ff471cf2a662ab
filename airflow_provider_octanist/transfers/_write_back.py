"""
Writing lead outcomes back into Octanist, one update per row, every row accounted for.

What the object-storage and the SQL write-back share: what a row means (``parse_row``), the
concurrent sender that adapts to 429 (``Sender``), the accounting and its summary (``Tally``), the
report of one JSON line per row, progress in the log, and the operator base that ties them together.
Rows come from an iterator and at most ``max_concurrency`` updates are in flight at any moment, so
memory stays flat whatever the number of rows.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, ClassVar

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

LEAD_KEYS = ("id", "email", "phone")
"""The columns that name a row's lead, in the order the API tries them."""
CHANGES = ("status", "value", "note", "lossReason")
"""The columns that carry a row's change."""
COLUMNS = LEAD_KEYS + CHANGES
_ARGUMENT = {"id": "lead_id", "lossReason": "loss_reason"}
"""``update_lead`` arguments whose name differs from the API's (the column's) name."""

UPDATED, VALID = "updated", "valid"
INVALID, NOT_FOUND, AMBIGUOUS, FAILED = "invalid", "not_found", "ambiguous", "failed"
NOT_APPLIED = (INVALID, NOT_FOUND, AMBIGUOUS, FAILED)
"""The outcomes counted against ``max_failed_rows``."""
NOT_SENT = "not_sent"
"""A valid row the run did not apply because it stopped first (a refused key, for one)."""
SENT = (UPDATED, FAILED)
"""The outcomes of a row whose update reached Octanist or may have (a failed one's is unknown)."""

MAX_CONCURRENCY = 64
"""The most updates a task may keep in flight: Octanist documents no rate limit, so be a good citizen."""
PROGRESS_SECONDS = 5.0
"""Seconds between two progress lines in the task log."""
PROBLEMS_NAMED = 5
"""Rows named, with their reasons, in the error of a task that fails."""
REPORT_LINES = 1_000
"""Report lines encoded and written together."""


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
    """What happened to one row."""

    row: int
    outcome: str
    lead: Mapping[str, Any] | None = None
    lead_id: str | None = None
    leads_updated: int | None = None
    error: Mapping[str, Any] | None = None

    def line(self) -> dict[str, Any]:
        """The row's line in the report."""
        line: dict[str, Any] = {"row": self.row, "outcome": self.outcome}
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
        return f"row {self.row}{lead}: {self.outcome}" + (f": {reason}" if reason else "")


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
        return Outcome(row, outcome, lead, error=_error_of(exc))
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


def not_sent(item: Outcome | tuple[int, dict[str, Any], dict[str, Any]], reason: str) -> Outcome:
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
        items: Iterable[Outcome | tuple[int, dict[str, Any], dict[str, Any]]],
        record: Callable[[Outcome], None],
    ) -> Exception | None:
        """
        Send every ``(row, lead, arguments)`` of ``items`` and ``record`` each outcome, in this thread.

        An ``Outcome`` among the items (a row that is not sent) is recorded as it comes. Items are
        drawn only when the window has room, so no more than the window is ever held.

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
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                row, lead, _arguments = in_flight.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:
                    stop = stop or exc
                    refused = isinstance(exc, OctanistAuthError)
                    outcome = Outcome(row, NOT_SENT if refused else FAILED, lead, error=_error_of(exc))
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
        self.leads_updated = 0
        self.rate_limited = 0
        self.problems: list[Outcome] = []
        self.stopped_by: str | None = None
        """Why the run stopped before the end of its input, if it did."""

    def add(self, outcome: Outcome) -> None:
        """Count one row's outcome."""
        self.rows += 1
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
        """Rows invalid, not found, ambiguous or failed."""
        return sum(self.counts[name] for name in NOT_APPLIED)

    def summary(self, *, dry_run: bool, report: str | None) -> dict[str, Any]:
        """The task's summary (XCom): how many rows, and how each ended."""
        return {
            "rows": self.rows,
            "updated": self.counts[UPDATED],
            "not_found": self.counts[NOT_FOUND],
            "ambiguous": self.counts[AMBIGUOUS],
            "invalid": self.counts[INVALID],
            "failed": self.counts[FAILED],
            "valid": self.counts[VALID],
            "not_sent": self.counts[NOT_SENT],
            "stopped_by": self.stopped_by,
            "leads_updated": self.leads_updated,
            "rate_limited": self.rate_limited,
            "dry_run": dry_run,
            "report_path": report,
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
        report_path: Any = None,
        storage_conn_id: str | None = None,
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        whole_number(max_concurrency, "max_concurrency", low=1, high=MAX_CONCURRENCY)
        whole_number(max_failed_rows, "max_failed_rows", low=0)
        if not isinstance(dry_run, bool):
            raise ValueError(f"dry_run must be True or False, got {dry_run!r}.")
        if report_path is not None:
            _storage.check_path(report_path, storage_conn_id)
        self.max_concurrency = max_concurrency
        self.max_failed_rows = max_failed_rows
        self.report_path = report_path
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
        report = None
        if self.report_path is not None:
            target = _storage.resolve(self.report_path, self.storage_conn_id)
            report = _storage.describe(target)
        self.log.info(
            "Writing lead outcomes from %s into Octanist%s (up to %d at once%s).",
            source,
            " as a dry run: every row is checked, none is sent" if self.dry_run else "",
            self.max_concurrency,
            f", report to {report}" if report else "",
        )
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
                tally.add(outcome)
                if writer is not None:
                    lines.append(outcome.line())
                    if len(lines) >= REPORT_LINES:
                        writer.write(lines)
                        lines.clear()
                progress.tick(tally)

            items = iter(self._items(rows))
            try:
                stop = self._send(items, record, tally)
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

        if self.report_path is None:
            run(None)
        else:
            _storage.write_whole(target, run)
        summary = self.summary = tally.summary(dry_run=self.dry_run, report=report)
        elapsed = time.monotonic() - progress.started
        self.log.info(
            "Write-back of %d row(s) from %s %s in %.1f s: %d updated, %d not found, %d ambiguous, "
            "%d invalid, %d failed, %d not sent.",
            tally.rows,
            source,
            "stopped" if stop is not None else "done",
            elapsed,
            summary["updated"],
            summary["not_found"],
            summary["ambiguous"],
            summary["invalid"],
            summary["failed"],
            summary["not_sent"],
        )
        self._verdict(tally, stop, source, report)
        return summary

    def _verdict(self, tally: Tally, stop: Exception | None, source: str, report: str | None) -> None:
        """Fail the task, never to be retried, when the run stopped or too many rows were not applied."""
        summary = self.summary or {}
        where = f" Every row's outcome is in the report at {report}." if report else ""
        if stop is not None:
            raise AirflowFailException(
                f"The write-back from {source} stopped after {tally.rows} row(s): {stop}. "
                f"{tally.sent} row(s) had reached Octanist ({summary['updated']} updated, "
                f"{summary['failed']} failed with an outcome unknown), {summary['not_sent']} valid row(s) "
                f"were not sent.{where} It is not retried: a run again would send the applied rows again "
                "(a note is attached again each time). Fix the cause, then send only the rows not applied "
                "(report outcomes not_sent, invalid, failed), or the whole input once you know it is safe."
            ) from stop
        if tally.not_applied > self.max_failed_rows:
            named = "; ".join(problem.describe() for problem in tally.problems)
            more = tally.not_applied - len(tally.problems)
            raise AirflowFailException(
                f"{tally.not_applied} of {tally.rows} row(s) from {source} were not applied, more than "
                f"max_failed_rows={self.max_failed_rows}: {named}"
                + (f"; and {more} more" if more > 0 else "")
                + (where or ".")
                + " Fix the rows (or raise max_failed_rows) and run the task again; it was not retried "
                "because every row had been tried."
            )

    def _send(
        self,
        items: Iterator[Outcome | tuple[int, dict[str, Any], dict[str, Any]]],
        record: Callable[[Outcome], None],
        tally: Tally,
    ) -> Exception | None:
        """Send (or in a dry run, only check) every item; return what stopped it early, if anything."""
        if self.dry_run:
            for item in items:
                record(item if isinstance(item, Outcome) else Outcome(item[0], VALID, item[1]))
            return None
        with self._make_hook() as hook:
            sender = Sender(hook, self.max_concurrency)
            stop = sender.run(items, record)
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
        items: Iterator[Outcome | tuple[int, dict[str, Any], dict[str, Any]]],
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
    ) -> Iterable[Outcome | tuple[int, dict[str, Any], dict[str, Any]]]:
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
