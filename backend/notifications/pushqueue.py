"""One Celery message for the push rows of many transactions (issue 15).

After commit, a transaction's push rows used to be handed to Celery by the committing thread: one
`deliver_pushes` message per transaction, ~0.2–0.45 ms of CPU each (building, serializing and publishing the
message) — a fifth of a wallet transfer's CPU, for a message that carried two ids. Now the committing thread
only appends the ids to this process's queue; one daemon thread per process sends whatever has gathered as
one message (at most `batch` ids each), `linger` seconds after the first id arrived or at once when a batch is
full. Under load one message carries the ids of many transactions; an idle process sends each transaction's
ids `linger` later than before (milliseconds, against a push's hundreds).

Nothing is promised that was not before: the rows are committed before their ids get here, so a process
that dies with ids still queued loses only the enqueue, and the sweep (`sweep_pending_pushes`) delivers those
rows, as it does for a process that died between commit and enqueue. A process that exits normally sends what
is queued on the way out (atexit). A forked child starts with an empty queue (what was queued belongs to the
parent, which sends it) and its own thread. The thread never touches the database.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("quanzi.notifications")


class PushQueue:
    def __init__(self, send: Callable[[list[int]], None], *, linger: float, batch: int) -> None:
        self.send, self.linger, self.batch = send, linger, batch
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._in_flight = threading.Lock()  # held by the sender thread from taking ids until they are sent
        self._ids: list[int] = []
        self._thread: threading.Thread | None = None

    def add(self, ids: list[int]) -> None:
        """Queue ids of committed rows; they are sent within `linger` seconds. Never raises for the sender."""
        if not ids:
            return
        with self._lock:
            was_empty = not self._ids
            self._ids.extend(ids)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="notifications-push-queue", daemon=True)
                self._thread.start()
            # the sender waits for the first id, then for a full batch or the end of its linger
            if was_empty or len(self._ids) >= self.batch:
                self._wake.notify()

    def flush(self, *, timeout: float = 10.0) -> None:
        """Send everything queued now from the calling thread, after what the sender thread is sending (so a
        process on its way out does not end before that is sent either)."""
        with self._lock:
            ids, self._ids = self._ids, []
        if self._in_flight.acquire(timeout=timeout):
            self._in_flight.release()
        self._send_all(ids)

    def _take(self) -> list[int]:
        """Wait for ids, then linger; returns them with `_in_flight` held (released once they are sent)."""
        with self._lock:
            while not self._ids:
                self._wake.wait()
            deadline = time.monotonic() + self.linger
            while len(self._ids) < self.batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            ids, self._ids = self._ids, []
            self._in_flight.acquire()
        return ids

    def _run(self) -> None:
        while True:
            try:
                ids = self._take()
                try:
                    self._send_all(ids)
                finally:
                    self._in_flight.release()
            except Exception:  # never let the sender die: the next ids would wait for the sweep
                log.exception("push queue: unexpected error")

    def _send_all(self, ids: list[int]) -> None:
        for start in range(0, len(ids), self.batch):
            chunk = ids[start:start + self.batch]
            try:
                self.send(chunk)
            except Exception:
                log.warning("push for notifications %s not enqueued; the sweep will deliver them", chunk,
                            exc_info=True)


def process_queue(send: Callable[[list[int]], None], *, linger: float, batch: int) -> PushQueue:
    """The queue of this process: sent on exit, emptied (not sent) in a forked child."""
    queue = PushQueue(send, linger=linger, batch=batch)
    atexit.register(queue.flush)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=queue._reset)
    return queue
