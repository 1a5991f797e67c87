# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stop requests: SIGINT or SIGTERM during a run stops it at its next mutating call, not in the middle of one.

The module process gets SIGINT when ansible-playbook is interrupted and SIGTERM when AWX
cancels a job. The signal only records the request: no exception is raised where the
signal lands, so a call under way finishes, the executor's guard refuses to start a new
creation or deletion, the operations already begun are completed (a registered JIT
runner gets its VM, a runner deleted on GitHub loses its VM), and the run saves each
pool's state and releases its locks as after any run. Later signals change nothing: they
cannot break off what the first one lets finish.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import RunnerError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(RunnerError):
    """A stop request refused to start a creation or a deletion."""


class StopRequest:
    """Whether a stop was requested, and by which signal; `on_request` tells a person at once."""

    def __init__(self, on_request: t.Optional[t.Callable[[str], None]] = None) -> None:
        self._event = threading.Event()
        self.reason: t.Optional[str] = None
        self.signals = 0
        self._on_request = on_request

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str) -> None:
        self.signals += 1
        if self.reason is None:
            self.reason = reason
            self._event.set()
            message = f"{reason} received: no new creation or deletion is started; those under way finish"
        else:
            message = f"{reason} received again: still finishing the creations and deletions under way"
        if self._on_request is not None:
            self._on_request(message)

    def check(self) -> None:
        """Stopped once a stop was requested (the same text for every call: one line per pool)."""
        if self.reason is not None:
            raise Stopped(f"stopped by {self.reason}")

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when a stop is requested meanwhile; then Stopped."""
        self._event.wait(seconds)
        self.check()


def guard_with(stop: StopRequest, ensure_held: t.Callable[[], None]) -> t.Callable[[str], None]:
    """The executor's guard: the lock first (a lost lock is never waived), then the stop request."""

    def guard(call: str) -> None:
        ensure_held()
        stop.check()

    return guard


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest, signals: t.Sequence[signal.Signals] = STOP_SIGNALS) -> t.Iterator[StopRequest]:
    """`stop` requested by `signals` while the block runs; the former handlers come back after it.

    Outside the main thread Python cannot install handlers: the block then runs without them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: t.Any) -> None:
        stop.request(signal.Signals(signum).name)

    previous: t.Dict[signal.Signals, t.Any] = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
        yield stop
    finally:
        for sig, former in previous.items():
            signal.signal(sig, former)
