"""Ctrl-C and SIGTERM that are never lost, even when they arrive while Python runs a finalizer.

Python runs a signal handler in the main thread at the next bytecode boundary, which may lie inside a weakref
callback, a ``__del__`` or a garbage-collector callback. An exception raised there cannot propagate: Python hands it
to ``sys.unraisablehook``, prints "Exception ignored in ..." and carries on. Dagster's handler during a step raises
``DagsterExecutionInterruptedError`` at once, so an interrupt landing in such a place was dropped and the run went on
to succeed (seen once in CI: ``glitchflow materialize`` finished both windows after a SIGTERM).

Here the hook re-arms such an interrupt instead. It cannot make SIGINT pending itself: the handler would run inside
the hook, at its next call, and be swallowed once more. It starts a short real-time timer and returns; the timer's
SIGALRM, handled outside the hook, makes SIGINT pending, so the handler in force (Dagster's during a step, Python's
otherwise) raises in ordinary code. Landing in another finalizer only repeats the round.
"""

import _thread
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

REARM_AFTER_S = 0.01  # long beside the hook's last microseconds, short beside a person's reaction


def _is_interrupt(exc: BaseException | None) -> bool:
    return isinstance(exc, KeyboardInterrupt | dg.DagsterExecutionInterruptedError)


def _interrupt_main(_signo: int, _frame: Any) -> None:
    _thread.interrupt_main()  # SIGINT pending: its handler runs at the next bytecode boundary


@contextmanager
def swallowed_interrupts_redelivered() -> Iterator[None]:
    """Within the block an interrupt swallowed by a finalizer is raised again shortly after; every other unraisable
    exception goes to the hook installed before. Hook, SIGALRM handler and timer are restored afterwards. Outside the
    main thread, which alone receives signals, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_hook, previous_alarm = sys.unraisablehook, signal.signal(signal.SIGALRM, _interrupt_main)

    def hook(unraisable: Any) -> None:
        if _is_interrupt(unraisable.exc_value):
            signal.setitimer(signal.ITIMER_REAL, REARM_AFTER_S)  # fires once this hook has returned
        else:
            previous_hook(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
