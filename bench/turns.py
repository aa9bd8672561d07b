"""Measured phases one at a time while the benches' set-up runs side by side (`make bench-quick`).

Under `BENCH_QUICK=1 bench/run.py` every bench starts at once and prepares its data, database and servers
concurrently with the others; `with measuring():` then waits until the runner says it is this bench's turn (the
runner says so only once every bench has finished its set-up, and to one bench at a time), so nothing else on
the machine is busy while a bench measures: its ratios compare two measurements taken on a quiet machine, as in
a sequential run. On leaving the block the bench tells the runner it is done and waits until every bench has
measured before it goes on (stopping its servers and dropping its database are work the next bench must not
share the cores with). Run alone, or by the full `make bench` (one bench after another), `measuring()` does
nothing. Nothing here measures anything.

The runner passes two pipe descriptors in BENCH_TURN_FDS ("<read>,<write>"): the bench writes `ready` and
`done`, the runner writes `go` and `release`. A closed pipe (the runner went away) lets the bench carry on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ENV = "BENCH_TURN_FDS"


def _pipes() -> tuple[int, int] | None:
    value = os.environ.pop(ENV, None)  # read once: the bench's own child processes are not benches
    if not value:
        return None
    read_fd, write_fd = (int(x) for x in value.split(","))
    return read_fd, write_fd


_PIPES = _pipes()


def _say(write_fd: int, word: str) -> None:
    try:
        os.write(write_fd, f"{word}\n".encode())
    except OSError:  # the runner went away: nobody to tell
        pass


def _wait_for(read_fd: int, word: str) -> None:
    """Block until the runner writes `word` (or closes the pipe)."""
    buffer = b""
    while True:
        chunk = os.read(read_fd, 64)
        if not chunk:
            return
        buffer += chunk
        if f"{word}\n".encode() in buffer:
            return


@contextlib.contextmanager
def measuring() -> Iterator[None]:
    """Wrap a bench's measured phases: set-up before the block, figures inside, clean-up after it."""
    if _PIPES is None:
        yield
        return
    read_fd, write_fd = _PIPES
    _say(write_fd, "ready")
    _wait_for(read_fd, "go")
    try:
        yield
    except BaseException:
        _say(write_fd, "done")  # failing (or interrupted): clean up at once, do not wait for the others
        raise
    _say(write_fd, "done")
    _wait_for(read_fd, "release")
