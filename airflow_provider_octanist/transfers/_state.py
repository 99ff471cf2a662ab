"""
What a write-back remembers between runs (``state_path``): every rule that reads or changes it.

The state is one JSON object per task: per lead, a keyed digest of the lead key (never the key
itself) and the digests of the fields last applied to it; the rows not applied yet, with their
fields, so that a later run can send them without its input (the one place row values are kept);
and the leads whose note has an outcome nobody knows. Saving a whole state of 100,000 leads takes a
while, so what changed since the last whole save goes to a small **journal** next to it
(``<state>.journal``), which is also the run's lease: its run id and heartbeat tell a second run
of the same task that the state is in use. A row carrying a note is written to the journal as
``sending`` before it is sent; a journal left by a run that died names the notes that may or may
not have been attached, and they become ``unknown``. Both objects are written whole or not at all
(``_storage.write_whole``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.transfers import _storage
from airflow_provider_octanist.transfers._outcomes import json_value
from airflow_provider_octanist.transfers._rows import LEAD_KEYS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from airflow_provider_octanist.transfers._outcomes import Item, Outcome

FORMAT = "octanist-write-back-state"
VERSION = 1
SAVE_ROWS = 500
"""Leads changed since the last whole save that make the next one due."""
SAVE_SECONDS = 10.0
"""Seconds after which changes since the last whole save are saved whole."""
JOURNAL_SECONDS = 1.0
"""Seconds after which changes not yet in the journal are written to it (also the heartbeat)."""
LEASE_SECONDS = 60.0
"""A journal whose heartbeat is older than this is a dead run's, whatever host it ran on."""
DIGEST_CHARS = 24
"""Hex characters of a digest: 96 bits, so two keys or two rows never meet by chance."""


class StateError(RuntimeError):
    """The state cannot be read, or is not a write-back state: never taken as an empty one."""


class StateInUseError(StateError):
    """Another run of the task holds the state; nothing was sent."""


def _now_text(now: float) -> str:
    return datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_of(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def row_digest(arguments: Mapping[str, Any]) -> str:
    """The digest of a row's validated fields, as they would be sent (status spelt as the API spells it)."""
    from airflow_provider_octanist._lead_bodies import update_lead_body

    body = update_lead_body(dict(arguments))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


@dataclass
class _Row:
    """A row between the moment it is read and its outcome."""

    key: str
    digest: str
    lead: dict[str, Any]
    arguments: dict[str, Any]
    carried_since: str | None = None


class WriteBackState:
    """
    The state of one write-back task, loaded at the start of a run and saved as the run goes.

    Use ``open`` to load it (and take the lease), ``items`` to filter the run's rows and add the
    carried ones, ``before_send`` right before each update goes out, ``settle`` with each outcome,
    ``heartbeat`` while waiting, and ``close`` at the end.

    :param target: the state's ``ObjectStoragePath``.
    :param carry_over_for: how long a row not applied is sent again before it is given up.
    :param read_only: a dry run: read the state, never write it or take the lease.
    :param clock: wall-clock seconds (the times written in the state).
    """

    def __init__(
        self,
        target: Any,
        *,
        carry_over_for: timedelta,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.journal = target.parent / f"{target.name}.journal"
        self.where = _storage.describe(target)
        self.carry_over_for = carry_over_for.total_seconds()
        self.read_only = read_only
        self.clock = clock
        self.run_id = uuid.uuid4().hex
        self.salt = secrets.token_hex(16)
        self.leads: dict[str, str | dict[str, Any]] = {}
        """Per lead: the digest last applied, or a record (``applied``, ``carried``, ``unknown``)."""
        self.changed: set[str] = set()
        """Leads changed since the last whole save (written to the journal until then)."""
        self.sending: dict[str, dict[str, Any]] = {}
        """Notes sent (or about to be) whose outcome is not saved: ``mark -> {key, digest, since}``."""
        self.stale_unknown = 0
        """Leads with a note of unknown outcome that this run's input did not name."""
        self.lost = False
        """Another run took the lease: this one saves nothing more."""
        self._rows: dict[int, _Row] = {}
        self._marks: dict[int, str] = {}
        self._applied_now: set[str] = set()
        self._named: set[str] = set()
        self._journal_due = False
        self._last_full = self._last_journal = time.monotonic()

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: Any,
        *,
        carry_over_for: timedelta,
        read_only: bool = False,
        resolve_unknown: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> WriteBackState:
        """Load the state at ``target`` (none yet: empty), take in a dead run's journal, take the lease."""
        state = cls(target, carry_over_for=carry_over_for, read_only=read_only, clock=clock)
        document = state._read(target, "state")
        if document is not None:
            state.salt = document["salt"]
            state.leads = document["leads"]
        journal = state._read(state.journal, "journal")
        if journal is not None:
            if not read_only:
                state._refuse_if_held(journal)
            if document is None:  # a first run that died before its first whole save
                state.salt = journal["salt"]
            state._recover(journal)
        if resolve_unknown:
            state._resolve(resolve_unknown)
        if not read_only:
            state._save_journal(checked=True)
            held = state._read(state.journal, "journal")
            if held is None or held.get("run_id") != state.run_id:
                raise StateInUseError(
                    f"Another run of this task took the write-back state {state.where} at the same "
                    "moment; this one sent nothing. Run it again once the other has finished."
                )
        return state

    def _read(self, path: Any, what: str) -> dict[str, Any] | None:
        where = _storage.describe(path)
        try:
            if not path.fs.exists(path.path):
                return None
            with path.fs.open(path.path, "rb") as stream:
                data = stream.read()
        except Exception as exc:
            raise StateError(f"The write-back {what} {where} could not be read: {exc}") from exc
        try:
            document = json.loads(data)
        except ValueError as exc:
            document = exc
        expected = {"state": ("salt", "leads"), "journal": ("run_id", "salt", "changes", "sending")}[what]
        if (
            not isinstance(document, dict)
            or document.get("format") != FORMAT
            or document.get("version") != VERSION
            or not all(name in document for name in expected)
        ):
            raise StateError(
                f"The write-back {what} {where} is not a write-back state this version can read "
                f"({document if isinstance(document, Exception) else 'format or version not recognised'}). "
                "It was not taken as empty: that would send every row again and attach their notes "
                "twice. Restore it from a backup, or delete it (and its .journal) to start afresh."
            )
        return document

    def _refuse_if_held(self, journal: Mapping[str, Any]) -> None:
        if journal.get("released"):
            return
        age = self.clock() - float(journal.get("heartbeat", 0))
        same_host = journal.get("host") == socket.gethostname()
        if age > LEASE_SECONDS or (same_host and not _alive(journal.get("pid"))):
            return  # a run that died: its journal is recovered
        raise StateInUseError(
            f"The write-back state {self.where} is in use by another run of this task (run "
            f"{journal.get('run_id')} on {journal.get('host')}, process {journal.get('pid')}, last "
            f"heartbeat {age:.0f} s ago); this one sent nothing. Run it again once the other has "
            f"finished (a run that died lets go after {LEASE_SECONDS:.0f} s)."
        )

    def _recover(self, journal: Mapping[str, Any]) -> None:
        """Take in a journal's changes; its notes still marked ``sending`` have an unknown outcome."""
        for key, record in journal["changes"].items():
            if record is None:
                self.leads.pop(key, None)
            else:
                self.leads[key] = record
            self.changed.add(key)
        for mark in journal["sending"].values():
            record = self.record(mark["key"])
            record["unknown"] = {
                "digest": mark["digest"],
                "since": mark["since"],
                "reason": "the run sending it stopped before its answer was saved (it may have been "
                "killed): the note may or may not be on the lead",
            }
            self.keep(mark["key"], record)

    def _resolve(self, resolve_unknown: Mapping[str, str]) -> None:
        for value, verdict in resolve_unknown.items():
            keys = [self.key({name: value}) for name in LEAD_KEYS]
            for key in keys:
                record = self.record(key)
                if "unknown" not in record:
                    continue
                unknown = record.pop("unknown")
                record.pop("carried", None)
                if verdict == "applied":
                    record["applied"] = [unknown["digest"]]
                self.keep(key, record)

    # -- the rows -----------------------------------------------------------------------------

    def record(self, key: str) -> dict[str, Any]:
        """A lead's record to read or change (then ``keep`` it): empty for a lead not in the state."""
        value = self.leads.get(key)
        if value is None:
            return {}
        return {"applied": [value]} if isinstance(value, str) else value

    def keep(self, key: str, record: dict[str, Any]) -> None:
        """
        Store a lead's record: a lead applied once and owing nothing is only its digest (most leads:
        a third of the memory and a smaller state), a lead with nothing left is forgotten.
        """
        if not record:
            self.leads.pop(key, None)
        elif record.keys() == {"applied"} and len(record["applied"]) == 1:
            self.leads[key] = record["applied"][0]
        else:
            self.leads[key] = record
        self.changed.add(key)

    def key(self, lead: Mapping[str, Any]) -> str:
        """The state's name for a lead key: a keyed digest, so no email or phone is in the state."""
        ((name, value),) = lead.items()
        text = f"{name}\0{value}".encode()
        return hmac.new(bytes.fromhex(self.salt), text, hashlib.sha256).hexdigest()[:DIGEST_CHARS]

    def items(self, items: Iterable[Item]) -> Iterator[Item]:
        """
        The run's items as they should be sent: unchanged rows and rows of a lead whose note is
        unknown become outcomes; then the rows carried from earlier runs the input did not name.
        """
        from airflow_provider_octanist.transfers._outcomes import UNCHANGED, UNKNOWN, Outcome

        last = 0
        for item in items:
            self.save_if_due()  # also the heartbeat of a run reading many rows it need not send
            if isinstance(item, Outcome):
                last = item.row or last
                yield item
                continue
            number, lead, arguments = item
            last = number
            key, digest = self.key(lead), row_digest(arguments)
            value = self.leads.get(key)
            if isinstance(value, str) or value is None:  # most leads: no more than a digest
                if digest == value:
                    yield Outcome(number, UNCHANGED, lead)
                    continue
                self._rows[number] = _Row(key, digest, lead, arguments)
                yield item
                continue
            record = value
            self._named.add(key)
            if "unknown" in record:
                yield Outcome(
                    number, UNKNOWN, lead, error={"message": _unknown_text(record["unknown"], lead)}
                )
                continue
            carried = record.get("carried")
            if carried is not None and carried.get("run") != self.run_id and not self.read_only:
                del record["carried"]  # today's row for this lead replaces the one carried
                self.keep(key, record)
            if digest in record.get("applied", ()):
                yield Outcome(number, UNCHANGED, lead)
                continue
            self._rows[number] = _Row(key, digest, lead, arguments)
            yield item
        yield from self._carried(last)

    def _carried(self, last: int) -> Iterator[Item]:
        from airflow_provider_octanist.transfers._outcomes import GIVEN_UP, Outcome

        now = self.clock()
        number = last
        for key, record in list(self.leads.items()):
            if isinstance(record, str):
                continue
            if "unknown" in record:
                self.stale_unknown += key not in self._named
                continue
            carried = record.get("carried")
            if carried is None or carried.get("run") == self.run_id or key in self._named:
                continue
            number += 1
            since = carried["since"]
            if now - _seconds_of(since) > self.carry_over_for:
                if not self.read_only:
                    del record["carried"]
                    self.keep(key, record)
                message = (
                    f"given up: not applied since {since} ({carried['reason']}: "
                    f"{carried.get('error', '')}), longer than carry_over_for"
                )
                yield Outcome(
                    None, GIVEN_UP, carried["lead"], error={"message": message}, carried_since=since
                )
                continue
            self._rows[number] = _Row(key, carried["digest"], carried["lead"], carried["fields"], since)
            yield number, dict(carried["lead"]), dict(carried["fields"])

    def before_send(self, number: int) -> None:
        """Right before row ``number`` goes out: a note is first written to the journal as ``sending``."""
        row = self._rows[number]
        if "note" in row.arguments and not self.read_only:
            mark = uuid.uuid4().hex[:12]
            self._marks[number] = mark
            self.sending[mark] = {"key": row.key, "digest": row.digest, "since": _now_text(self.clock())}
            self._save_journal()
        else:
            self.save_if_due()

    def settle(self, outcome: Outcome) -> Outcome:
        """Record ``outcome`` in the state; return it as the run counts and reports it."""
        from dataclasses import replace

        from airflow_provider_octanist.transfers._outcomes import (
            AMBIGUOUS,
            FAILED,
            NOT_FOUND,
            NOT_SENT,
            UNKNOWN,
            UPDATED,
        )

        number = outcome.row
        row = self._rows.pop(number, None) if number is not None else None
        if row is None:
            return outcome
        if row.carried_since is not None:
            outcome = replace(outcome, row=None, carried_since=row.carried_since)
        mark = self._marks.pop(number, None) if number is not None else None
        if self.read_only:
            return outcome
        note = "note" in row.arguments
        record = self.record(row.key)
        now = _now_text(self.clock())
        if outcome.outcome == UPDATED:
            applied = record.get("applied", []) if row.key in self._applied_now else []
            record["applied"] = [*applied, row.digest] if row.digest not in applied else applied
            self._applied_now.add(row.key)
            record.pop("carried", None)
        elif outcome.outcome == FAILED and note and outcome.may_have_applied:
            reason = str((outcome.error or {}).get("message", "no answer"))
            record["unknown"] = {"digest": row.digest, "since": now, "reason": reason}
            outcome = replace(
                outcome,
                outcome=UNKNOWN,
                error={**(outcome.error or {}), "message": _unknown_text(record["unknown"], row.lead)},
            )
        elif outcome.outcome in (NOT_FOUND, AMBIGUOUS, FAILED, NOT_SENT):
            previous = record.get("carried") or {}
            since = row.carried_since or (
                previous.get("since") if previous.get("digest") == row.digest else None
            )
            reason = "rate_limited" if (outcome.error or {}).get("status") == 429 else outcome.outcome
            record["carried"] = {
                "reason": reason,
                "error": str((outcome.error or {}).get("message", ""))[:500],
                "since": since or now,
                "run": self.run_id,
                "digest": row.digest,
                "lead": {name: json_value(value) for name, value in row.lead.items()},
                "fields": {name: json_value(value) for name, value in row.arguments.items()},
            }
        else:  # refused by Octanist as invalid: sending it again cannot help
            record.pop("carried", None)
        self.keep(row.key, record)
        if mark is not None:
            self.sending.pop(mark, None)
            self._journal_due = True  # a note's outcome is saved before the next update goes out
        return outcome

    # -- saving -------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Called while the run waits for answers: keeps the lease fresh and the changes saved."""
        self.save_if_due()

    def save_if_due(self) -> None:
        """Save whole each ``SAVE_ROWS`` changes or ``SAVE_SECONDS``, the journal each ``JOURNAL_SECONDS``."""
        if self.read_only or self.lost:
            return
        now = time.monotonic()
        if len(self.changed) >= SAVE_ROWS or (self.changed and now - self._last_full >= SAVE_SECONDS):
            self._save_whole()
        elif self._journal_due or now - self._last_journal >= JOURNAL_SECONDS:
            self._save_journal()

    def _save_whole(self) -> None:
        self._check_lease()
        document = {
            "format": FORMAT,
            "version": VERSION,
            "saved_at": _now_text(self.clock()),
            "salt": self.salt,
            "leads": self.leads,
        }
        data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        _storage.write_whole(self.target, lambda stream: stream.write(data), lineage=False)
        self.changed.clear()
        self._last_full = time.monotonic()
        self._save_journal(checked=True)

    def _save_journal(self, *, checked: bool = False, released: bool = False) -> None:
        if not checked:
            self._check_lease()
        document = {
            "format": FORMAT,
            "version": VERSION,
            "run_id": self.run_id,
            "salt": self.salt,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "heartbeat": self.clock(),
            "released": released,
            "changes": {key: self.leads.get(key) for key in self.changed},
            "sending": self.sending,
        }
        data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        _storage.write_whole(self.journal, lambda stream: stream.write(data), lineage=False)
        self._journal_due = False
        self._last_journal = time.monotonic()

    def _check_lease(self) -> None:
        held = self._read(self.journal, "journal")
        if held is not None and held.get("run_id") != self.run_id:
            self.lost = True
            raise StateInUseError(
                f"Another run of this task took the write-back state {self.where} while this one "
                f"ran (run {held.get('run_id')} on {held.get('host')}); this run stops here. Only one "
                "run of a write-back task may use its state at a time."
            )

    def close(self) -> None:
        """Save the state whole and let go of the lease (a journal is left only for notes in flight)."""
        if self.read_only or self.lost:
            return
        self._save_whole()
        if self.sending:
            self._save_journal(checked=True, released=True)
        else:
            self.journal.fs.rm(self.journal.path)

    def size(self) -> int:
        """The state's size in bytes as saved."""
        return int(self.target.fs.size(self.target.path))


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unknown_text(unknown: Mapping[str, Any], lead: Mapping[str, Any]) -> str:
    named = " ".join(f"{name} {value}" for name, value in lead.items())
    return (
        f"not sent: a note for this lead was sent at {unknown['since']} and its outcome is unknown "
        f"({str(unknown['reason']).rstrip('.')}). Check the lead ({named}) in Octanist, then tell the "
        f"task with resolve_unknown={{{next(iter(lead.values()))!r}: 'applied'}} if the note is there, "
        "or 'not_applied' to send the row again"
    )
