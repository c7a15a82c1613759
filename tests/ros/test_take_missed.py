"""node_runtime.take_missed: messages left in a reader whose new-message event never came are
dispatched, in order, to the subscription's own callback (a fake of rclpy's Subscription: the
attributes the executors use: handle.take_message(msg_type, raw) -> (msg, info) | None)."""
from __future__ import annotations

from collections import deque

from gps_agent_ros.node_runtime import take_missed


class FakeHandle:
    def __init__(self, messages):
        self.queue, self.calls = deque(messages), []

    def take_message(self, msg_type, raw):
        self.calls.append((msg_type, raw))
        return (self.queue.popleft(), {'source_timestamp': 0}) if self.queue else None


class FakeSubscription:
    def __init__(self, messages, msg_type=str):
        self.handle, self.msg_type, self.raw, self.got = FakeHandle(messages), msg_type, False, []
        self.callback = self.got.append


def test_waiting_messages_reach_their_callbacks_in_order():
    a, b = FakeSubscription(['u99', 'zero']), FakeSubscription([], msg_type=bytes)
    assert take_missed(a, b) == 2
    assert a.got == ['u99', 'zero'] and b.got == []
    assert b.handle.calls == [(bytes, False)]          # asked with its own type
    assert take_missed(a, b) == 0 and a.got == ['u99', 'zero']   # a late event finds nothing twice
