"""The interface package builds into the venv and its types round-trip through rclpy."""
from __future__ import annotations

import array

from rclpy.serialization import deserialize_message, serialize_message

from gps_interfaces.action import RunTrial
from gps_interfaces.srv import ResetArm


def test_run_trial_goal_round_trip():
    goal = RunTrial.Goal(condition='train/2', joint_names=['a', 'b'], initial_joint_positions=[0.1, -0.2],
                         horizon=3, dt=0.05, controller_type=RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN,
                         dx=4, du=2, gains=[float(i) for i in range(24)], offsets=[0.5] * 6)
    back = deserialize_message(serialize_message(goal), RunTrial.Goal)
    assert back.condition == 'train/2' and list(back.joint_names) == ['a', 'b']
    assert isinstance(back.gains, array.array) and list(back.gains) == list(range(24))
    assert back.horizon == 3 and back.dx == 4 and back.du == 2


def test_result_status_codes_are_distinct():
    codes = [RunTrial.Result.STATUS_COMPLETED, RunTrial.Result.STATUS_ABORTED_STALE_STATE,
             RunTrial.Result.STATUS_ABORTED_LIMIT, RunTrial.Result.STATUS_CANCELLED,
             RunTrial.Result.STATUS_INVALID_CONTROLLER, RunTrial.Result.STATUS_RESET_FAILED]
    assert len(set(codes)) == len(codes)


def test_reset_service_types():
    req = ResetArm.Request(joint_names=['shoulder_pan_joint'], joint_positions=[0.3])
    assert deserialize_message(serialize_message(req), ResetArm.Request).joint_positions[0] == 0.3
    assert ResetArm.Response(success=True, message='ok').success
