"""The fault-injection suite's ledger: every test records what it injected and the rows lost or
doubled it found; the session ends with the tally (`pytest tests/faults -q` prints it)."""

from __future__ import annotations

from collections import defaultdict

import pytest

LEDGER: list[dict] = []


@pytest.fixture
def ledger():
    """record(kind, what, lost=0, doubled=0): kind is 'kill point', 'fault' or 'bad input'."""

    def record(kind: str, what: str, lost: int = 0, doubled: int = 0) -> None:
        LEDGER.append({"kind": kind, "what": what, "lost": lost, "doubled": doubled})

    return record


def pytest_terminal_summary(terminalreporter):
    if not LEDGER:
        return
    tally = defaultdict(lambda: [0, 0, 0])
    for entry in LEDGER:
        row = tally[entry["kind"]]
        row[0] += 1
        row[1] += entry["lost"]
        row[2] += entry["doubled"]
    terminalreporter.section("fault-injection ledger")
    for kind, (count, lost, doubled) in sorted(tally.items()):
        terminalreporter.write_line(f"{kind}: {count} tried, rows lost {lost}, rows doubled {doubled}")
