"""The server's clock as a feed reads it: believed at any offset a time zone explains, unless still."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_octanist.triggers._feed.server_clock import (
    CLOCK_TRUSTED_WITHIN,
    STANDING_STILL_AFTER,
    ServerClock,
    believable,
)

HERE = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


class Machine:
    """This machine's clocks, moved by the test."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return HERE + timedelta(seconds=self.seconds - 1000.0)


@pytest.mark.parametrize(
    ("offset", "believed"),
    [
        (timedelta(0), True),
        (timedelta(minutes=-7), True),
        (timedelta(hours=-3), True),  # local time written as UTC, west of Greenwich
        (timedelta(hours=14), True),  # ... and the furthest east
        (CLOCK_TRUSTED_WITHIN, True),
        (CLOCK_TRUSTED_WITHIN + timedelta(seconds=1), False),
        (datetime(1970, 1, 1, tzinfo=timezone.utc) - HERE, False),
    ],
)
def test_one_answer_is_believed_at_any_offset_a_time_zone_explains(offset: timedelta, believed: bool) -> None:
    assert (believable(HERE + offset, HERE) is not None) is believed


# Each step: seconds this machine moves, seconds the server's clock moves; then whether each is believed.
STEPS = [
    ("a clock that keeps time", [(5, 5), (40, 40), (40, 41)], [True, True, True]),
    ("a clock that stands still", [(5, 0), (40, 0), (40, 0)], [True, False, False]),
    ("a stuck clock that recovers", [(40, 0), (40, 80)], [False, True]),
    ("a slow clock, but moving", [(40, 25), (40, 25)], [True, True]),
    ("readings closer together than the check", [(1, 0), (1, 0), (1, 0)], [True, True, True]),
]


@pytest.mark.parametrize(
    ("steps", "expected"), [(s, e) for _, s, e in STEPS], ids=[name for name, _, _ in STEPS]
)
def test_a_clock_that_stands_still_while_this_machine_moves_is_not_believed(
    steps: list[tuple[float, float]], expected: list[bool]
) -> None:
    machine = Machine()
    clock = ServerClock(machine.monotonic, machine.wall)
    server = HERE - timedelta(hours=3)
    assert clock.read(server) == server  # the first reading sets where the clock stands
    seen = []
    for local, remote in steps:
        machine.seconds += local
        server += timedelta(seconds=remote)
        seen.append(clock.read(server) is not None)
    assert seen == expected
    assert STANDING_STILL_AFTER < 40


def test_the_servers_time_is_the_last_believed_reading_carried_forward() -> None:
    machine = Machine()
    clock = ServerClock(machine.monotonic, machine.wall)
    assert clock.now() == HERE, "with no reading believed, this machine's clock"
    server = HERE + timedelta(hours=5)
    clock.read(server)
    machine.seconds += 60
    assert clock.read(datetime(1970, 1, 1, tzinfo=timezone.utc)) is None
    assert "away from this machine's clock" in (clock.why_not or "")
    assert clock.now() == server + timedelta(seconds=60)
