"""Signal-safe start and stop, shared by every TDMI program (the nodes and the ``tdmi-pose`` launcher).

rclpy's own handlers shut the context down from another thread and turn SIGINT into a
``KeyboardInterrupt`` wherever the main thread happens to be: during activation that made
``rclpy.spin`` raise ``RCLError: ... the given context is not valid``, during teardown a second
Ctrl-C raised out of ``finally``. Here SIGINT and SIGTERM only set a flag (:class:`StopRequest`);
programs poll it between start-up steps and while spinning (:func:`spin_until_stopped`), then tear
down in order. A signal at any moment, once or twice, ends the program with exit 0 and no traceback.

The moments before Python runs our first line cannot be handled from inside the process, so:

- ``tdmi-pose`` starts its children with SIGINT/SIGTERM blocked (:func:`stop_signals_held`; a
  child inherits the mask and keeps it across ``exec``): a signal during their start-up waits,
  pending, until :func:`run_program` unblocks it;
- started as ``python -m tdmi_ros.<program>``, each program blocks them on its first line, before
  its slow imports (rclpy, OpenCV, torch);
- its children run in their own sessions, so a ``tdmi-pose`` that dies without stopping them
  (SIGKILL, a crash) could leave them running: a child it started (``TDMI_PARENT_PID`` set) asks
  Linux for SIGTERM when that parent dies (:func:`follow_parent`).

Usage, in a program's ``main``::

    def main(argv=None) -> int:
        return run_program(lambda stop: run_node(argv, stop, "my_node", MyNode, lambda node: spin_until_stopped(node, stop)))
"""
from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
NodeT = TypeVar("NodeT")
SPIN_SLICE_S = 0.1  # how long a signal may wait for the spinning thread to look at it
PARENT_PID_ENV = "TDMI_PARENT_PID"  # set by tdmi-pose for the programs it starts
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def hold_stop_signals() -> None:
    """Block SIGINT/SIGTERM in the calling thread until :func:`run_program` takes them over.

    Blocked signals stay pending rather than lost; threads started meanwhile inherit the mask.
    Also :func:`follow_parent`.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    follow_parent()


def follow_parent() -> None:
    """When started by ``tdmi-pose`` (``TDMI_PARENT_PID`` set): SIGTERM this process when that parent dies.

    Linux only (``PR_SET_PDEATHSIG``); the SIGTERM is a normal stop request (held until
    :func:`run_program`). The variable is removed so programs this one starts do not inherit it.
    """
    parent = os.environ.pop(PARENT_PID_ENV, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # it died before prctl: no signal will come
        sys.exit(f"parent process {parent} (tdmi-pose) exited before this program started")


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Block SIGINT/SIGTERM in this thread for the ``with`` block, then restore the mask.

    Programs started inside the block inherit the mask (it survives ``exec``), so a signal sent
    to them before their :func:`run_program` waits instead of killing them. Signals for this
    process that arrive meanwhile are delivered when the block ends.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class StopRequest:
    """Set by SIGINT/SIGTERM (or :meth:`request`); programs poll it instead of catching exceptions."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signals: list[str] = []

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, why: str = "requested") -> None:
        self.signals.append(why)
        self._event.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Sleep until a stop is requested or ``timeout_s`` passes; True if requested."""
        return self._event.wait(timeout_s)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # runs in the main thread between two bytecodes: only record, never raise
        self.request(signal.Signals(signum).name)


def run_program(body: Callable[[StopRequest], int]) -> int:
    """Run ``body(stop)`` with SIGINT/SIGTERM turned into ``stop.requested``; return its exit code.

    Signals held since start-up (:func:`hold_stop_signals`) are delivered as soon as the handlers
    are in place. Exceptions from ``body`` are not swallowed: a signal never causes one, so any
    exception is a real failure and keeps its traceback and non-zero exit. Once ``body`` is done
    the signals are ignored: Python resets its handlers while it finalizes, and a late SIGTERM
    must not turn a clean exit into death by signal (SIGKILL still ends a hung exit).
    """
    faulthandler.enable()  # a crash inside C code still prints every thread's Python stack
    stop = StopRequest()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop._on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        return body(stop)
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


@contextmanager
def ros_context(argv: list[str]) -> Iterator[Any]:
    """``rclpy.init(args=argv)`` without rclpy's signal handlers (ours are installed), shut down on exit."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    with rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO) as context:
        yield context


def run_node(argv: list[str], stop: StopRequest, name: str, make_node: Callable[[], NodeT],
             work: Callable[[NodeT], int | None], start_errors: tuple[type[BaseException], ...] = (),
             cleanup: Callable[[NodeT], None] | None = None) -> int:
    """The body of a plain node's program: create node ``name`` in a ROS context, run ``work(node)``.

    An error of ``start_errors`` while creating the node is logged FATAL and exits 2; ``cleanup``
    (e.g. joining a worker thread) and ``destroy_node`` always run. Returns ``work``'s code (None: 0).
    """
    if stop.requested:
        return 0
    with ros_context(argv):
        try:
            node = make_node()
        except start_errors as e:
            import rclpy.logging

            rclpy.logging.get_logger(name).fatal(f"cannot start {name}: {e}")
            return 2
        try:
            return work(node) or 0
        finally:
            if cleanup is not None:
                cleanup(node)
            node.destroy_node()


def spin_until_stopped(node: Any, stop: StopRequest, done: Callable[[], bool] | None = None,
                       slice_s: float = SPIN_SLICE_S) -> None:
    """Execute ``node``'s callbacks until a stop is requested, ``done()`` or its context shuts down."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not stop.requested and node.context.ok() and not (done is not None and done()):
            executor.spin_once(timeout_sec=slice_s)
    finally:
        executor.shutdown()
