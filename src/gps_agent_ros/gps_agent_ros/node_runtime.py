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
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

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


def run_node(make: Callable[[], Node], name: str, args: list[str] | None = None,
             stop: Callable[[Node, str, Executor], None] | None = None,
             extra: Callable[[Node], list[Node]] | None = None) -> int:
    """A node's main(): build it (a ValueError is a configuration mistake: one fatal line, exit
    1), spin it on an EventsExecutor until SIGINT/SIGTERM, then `stop(node, reason, executor)`
    (e.g. zero the arm and let a last result go out) and shut down cleanly: no callback races a
    context that is already gone. extra(node): nodes it made that share the executor."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = make()
    except ValueError as exc:
        rclpy.logging.get_logger(name).fatal(str(exc))
        rclpy.try_shutdown()
        return 1
    executor = EventsExecutor()
    executor.add_node(node)
    for other in (extra(node) if extra is not None else []):
        executor.add_node(other)
    reason = spin_until_signal(executor)
    if stop is not None:
        stop(node, reason, executor)
    executor.remove_node(node)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0
