"""How the nodes spin: until SIGINT/SIGTERM, with rclpy's own signal handlers off.

rclpy's handlers shut the context down first, after which a node could no longer publish its
last zero command or send a result. EventsExecutor.spin() busy-waits in this rclpy release and
does not return on a signal, so the executor is driven by spin_once with a timeout: it sleeps,
and the short return to Python lets the handler run.
"""
from __future__ import annotations

import signal
import time
from typing import Callable

import rclpy
from rclpy.executors import Executor

SPIN_TIMEOUT_S = 0.1         # bounds the reaction time to a signal


def spin_until_signal(executor: Executor, timeout_s: float = SPIN_TIMEOUT_S) -> str:
    """Spin until SIGINT or SIGTERM arrives or the context shuts down; returns the reason.

    An exception from a callback ends the spin too (reported in the reason), so the caller can
    still bring the arm to a safe stop.
    """
    received: list[str] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signal.Signals(signum).name))
    try:
        while not received and rclpy.ok():
            executor.spin_once(timeout_sec=timeout_s)
    except Exception as exc:  # noqa: BLE001 - the caller zeroes the arm
        return f"error: {exc!r}"
    return received[0] if received else "context shut down"


def spin_while(executor: Executor, condition: Callable[[], bool], timeout_s: float) -> None:
    """Spin while condition() holds, at most timeout_s (e.g. to let a last result go out)."""
    deadline = time.monotonic() + timeout_s
    while condition() and time.monotonic() < deadline and rclpy.ok():
        executor.spin_once(timeout_sec=0.01)
