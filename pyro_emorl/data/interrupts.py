"""SIGINT and SIGTERM stop the data commands promptly, cleanly and never silently.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be.
Raised inside a finalizer (a ``__del__``, a weakref callback) it is only reported as "Exception
ignored ..." and the program carries on, so one Ctrl-C in several was lost and a command ended
with status 0; raised inside one of h5py's callbacks it turns into an unrelated HDF5 error (a
``TypeError`` with a traceback). SIGTERM, by default, kills the process without any clean-up,
leaving its temporary file behind.

Under `stop_on_signals` both signals are therefore only recorded, and `check_interrupted`
raises `Interrupted` (a ``KeyboardInterrupt``) at safe points: the writers call it for every
record or batch (a fraction of a second apart), and `pyro_emorl.data.atomic.atomic_path` calls
it before its rename, so an interrupted command never completes its output. A second signal
changes nothing: the first one is already being acted on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Exit status of a command stopped by SIGINT or SIGTERM (as ``emorl train`` and shells use).
EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM received under `stop_on_signals`.

    Attributes:
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


_pending: list[str] = []  # names of the signals received under stop_on_signals, oldest first


def _record(signum: int, frame: FrameType | None) -> None:
    _pending.append(signal.Signals(signum).name)


def check_interrupted() -> None:
    """Raise `Interrupted` (naming the first signal) if SIGINT or SIGTERM arrived under
    `stop_on_signals`; otherwise nothing."""
    if _pending:
        raise Interrupted(_pending[0])


@contextmanager
def stop_on_signals(*, exiting: bool = False) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM are recorded for `check_interrupted` (see the
    module docstring); the block itself ends with `Interrupted` if one arrived after its last
    check.

    Signal handlers can only be installed from the main thread; elsewhere this does nothing and
    signals keep their previous behaviour. The previous handlers come back afterwards.

    Args:
        exiting: The process ends when the block is interrupted (a command line): then
            further SIGINT/SIGTERM are ignored instead of the previous handlers coming back,
            so that another Ctrl-C cannot turn the one-line exit into a traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
        check_interrupted()
    finally:
        interrupted = bool(_pending)
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if exiting and interrupted else handler)
        _pending.clear()
