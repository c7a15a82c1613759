"""SafetyFilter and StaleStateMonitor: clamping by hand, NaN refusal, velocity aborts, and the
stale-state watchdog with explicit times."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gps_controllers.safety import SafetyFilter, StaleStateMonitor, UnsafeCommand

REPO = Path(__file__).resolve().parents[2]
UR5E_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
               "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")
NAMES = ("a", "b", "c")


@pytest.fixture
def safety() -> SafetyFilter:
    return SafetyFilter([10.0, 5.0, 1.0], [2.0, 1.0, 0.5], joint_names=NAMES)


def test_filter_clamps_to_effort_limits(safety):
    out = np.empty(3)
    assert safety.filter(np.array([12.0, -7.0, 0.25]), out) is out
    np.testing.assert_array_equal(out, [10.0, -5.0, 0.25])


def test_filter_refuses_non_finite_and_zeroes_the_output(safety):
    out = np.full(3, 99.0)
    with pytest.raises(UnsafeCommand, match=r"non-finite effort command for \['b', 'c'\]"):
        safety.filter(np.array([1.0, np.nan, -np.inf]), out)
    np.testing.assert_array_equal(out, 0.0)


def test_velocity_interface_clamps_to_velocity_limits():
    f = SafetyFilter([10.0, 5.0], [2.0, 1.0], command_interface="velocity")
    np.testing.assert_array_equal(f.filter(np.array([3.0, -0.5]), np.empty(2)), [2.0, -0.5])
    np.testing.assert_array_equal(f.command_limits, [2.0, 1.0])


def test_check_state_velocity_limit_with_margin(safety):
    q = np.zeros(3)
    assert safety.check_state(q, np.array([2.0, -1.0, 0.5])) is None  # at the limits: fine
    reason = safety.check_state(q, np.array([0.0, -1.2, 0.0]))
    assert reason == "joint 'b' velocity -1.2 exceeds 1 x limit 1"
    lenient = SafetyFilter([10.0, 5.0, 1.0], [2.0, 1.0, 0.5], velocity_margin=1.5,
                           joint_names=NAMES)
    assert lenient.check_state(q, np.array([0.0, -1.2, 0.7])) is None  # 1.2 <= 1.5, 0.7 <= 0.75
    assert "joint 'c' velocity 0.8 exceeds 1.5 x limit 0.5" == lenient.check_state(
        q, np.array([0.0, 0.0, 0.8]))


def test_check_state_refuses_non_finite(safety):
    assert "non-finite joint positions" in safety.check_state(np.array([0.0, np.nan, 0.0]),
                                                              np.zeros(3))
    assert "non-finite joint velocities" in safety.check_state(np.zeros(3),
                                                               np.array([np.inf, 0.0, 0.0]))


def test_from_urdf_reads_ur5e_limits():
    f = SafetyFilter.from_urdf(REPO / "urdf" / "ur5e.urdf", UR5E_JOINTS)
    np.testing.assert_array_equal(f.command_limits, [150.0, 150.0, 150.0, 28.0, 28.0, 28.0])
    assert "wrist_3_joint" in f.check_state(np.zeros(6), np.array([0, 0, 0, 0, 0, 3.2]))
    with pytest.raises(ValueError, match=r"joints \['gripper'\] have no limits"):
        SafetyFilter.from_urdf(REPO / "urdf" / "ur5e.urdf", ["gripper"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(effort_limits=[1.0, -1.0], velocity_limits=[1.0, 1.0]),
     r"effort_limits must be finite and > 0, got \[1.0, -1.0\]"),
    (dict(effort_limits=[1.0], velocity_limits=[math.inf]), r"velocity_limits must be finite"),
    (dict(effort_limits=[1.0, 1.0], velocity_limits=[1.0]), r"must have the same length"),
    (dict(effort_limits=[], velocity_limits=[]), r"effort_limits is empty"),
    (dict(effort_limits=[1.0], velocity_limits=[1.0], velocity_margin=0.0),
     r"velocity_margin must be a finite number > 0, got 0.0"),
    (dict(effort_limits=[1.0], velocity_limits=[1.0], command_interface="position"),
     r"command_interface must be one of \('effort', 'velocity'\), got 'position'"),
    (dict(effort_limits=[1.0], velocity_limits=[1.0], joint_names=["a", "b"]),
     r"joint_names has 2 names for 1 limits"),
])
def test_constructor_validation_names_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SafetyFilter(**kwargs)


def test_stale_monitor_with_explicit_times():
    m = StaleStateMonitor(0.5)
    assert not m.is_stale(100.0)  # nothing to watch yet
    assert m.age(100.0) == math.inf
    m.update(10.0)
    assert not m.is_stale(10.5)   # exactly the timeout: not yet
    assert m.is_stale(10.5001)
    m.update(10.4)
    assert not m.is_stale(10.8) and m.age(10.8) == pytest.approx(0.4)
    m.reset()
    assert not m.is_stale(1e9)


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.nan, math.inf])
def test_stale_monitor_rejects_bad_timeouts(timeout):
    with pytest.raises(ValueError, match="timeout_s must be a finite number > 0"):
        StaleStateMonitor(timeout)
