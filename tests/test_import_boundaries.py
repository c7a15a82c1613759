"""Imports point down: gps_core and gps_controllers never load rclpy, messages or the simulator."""
from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ('rclpy', 'pybullet', 'std_msgs', 'sensor_msgs', 'gps_agent_ros')


@pytest.mark.parametrize('package', ['gps_core', 'gps_controllers'])
def test_package_loads_no_ros(package):
    code = (f'import sys, pkgutil, importlib, {package}\n'
            f'for m in pkgutil.walk_packages({package}.__path__, "{package}."): importlib.import_module(m.name)\n'
            f'print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '', f'{package} imported {out.stdout.strip()}'
