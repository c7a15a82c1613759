"""Shared fixtures for the robot-side tests (UR5e URDF, state encoder, PyBullet arm).
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

UR5E_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
               "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")


@pytest.fixture(scope="session")
def ur5e_urdf() -> str:
    return str(REPO / "urdf" / "ur5e.urdf")


@pytest.fixture(scope="session")
def ur5e_joints() -> tuple[str, ...]:
    return UR5E_JOINTS
