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
from rclpy.subscription import Subscription

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


def take_missed(*subscriptions: Subscription) -> int:
    """Run each subscription's callback on the messages waiting in it that the executor has not
    delivered; returns how many there were.

    Under CPU load the EventsExecutor of this rclpy release (with rmw_fastrtps, SHM or UDP)
    sometimes gets no new-message event for a message that is already in the reader (seen: a
    command sent right after another one, ~1 lockstep trial in 25 on a 2-core machine running 3x
    its cores' load): it stays there until the next message arrives, and a lockstep peer, which
    sends nothing until it hears back, waits for ever. A periodic timer calls this so such a
    message is dispatched within one period. Callbacks run on the executor thread either way
    (timers too), so nothing runs concurrently; the late event, if it ever comes, takes nothing.
    """
    taken = 0
    for sub in subscriptions:
        while (msg := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
            sub.callback(msg[0])
            taken += 1
    return taken


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
    context that is already gone. extra(node): more nodes in this process, sharing the executor
    (built after node, destroyed before it; a ValueError there is fatal the same way)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    nodes: list[Node] = []
    try:
        nodes.append(make())
        nodes.extend(extra(nodes[0]) if extra is not None else [])
    except ValueError as exc:
        rclpy.logging.get_logger(name).fatal(str(exc))
        for built in reversed(nodes):
            built.destroy_node()
        rclpy.try_shutdown()
        return 1
    executor = EventsExecutor()
    for built in nodes:
        executor.add_node(built)
    reason = spin_until_signal(executor)
    if stop is not None:
        stop(nodes[0], reason, executor)
    for built in reversed(nodes):
        executor.remove_node(built)
        built.destroy_node()
    rclpy.try_shutdown()
    return 0
