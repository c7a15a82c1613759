"""Each package.xml declares what its package really imports (read from the sources, not from
a list written with the manifests), under its rosdep key or the workspace package name, so
`rosdep install --from-paths src` on a ROS 2 machine installs what the code needs."""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ('gps_core', 'gps_controllers', 'gps_agent_ros')
# Python module -> rosdep key (ros/rosdistro rosdep/python.yaml, base.yaml) or ROS package name
KEYS = {
    'numpy': 'python3-numpy', 'scipy': 'python3-scipy', 'yaml': 'python3-yaml',
    'matplotlib': 'python3-matplotlib', 'torch': 'python3-torch', 'pybullet': 'python3-pybullet-pip',
    'pinocchio': 'pinocchio',
}
# PyPI-only modules without a rosdep key: docs/ros2_install.md installs them with pip
PIP_ONLY = {'mcap', 'mcap_ros2'}


def imports(package: str) -> set[str]:
    """Top-level modules the package's sources import (stdlib and the package itself left out)."""
    found: set[str] = set()
    for path in (REPO / 'src' / package / package).rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split('.')[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != package}


def declared(package: str) -> set[str]:
    root = ET.parse(REPO / 'src' / package / 'package.xml').getroot()
    tags = ('depend', 'exec_depend', 'build_export_depend')
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


@pytest.mark.parametrize('package', PACKAGES)
def test_every_import_is_a_declared_dependency(package):
    missing = sorted(KEYS.get(m, m) for m in imports(package) - PIP_ONLY if KEYS.get(m, m) not in declared(package))
    assert missing == [], f'{package}/package.xml does not declare {missing}'


@pytest.mark.parametrize('package', PACKAGES)
def test_no_declared_python_dependency_is_unused(package):
    used = {KEYS.get(m, m) for m in imports(package)}
    unused = sorted(d for d in declared(package) if d.startswith('python3-') and d not in used)
    assert unused == [], f'{package}/package.xml declares {unused}, which it never imports'


def test_the_node_package_depends_on_the_interfaces_it_imports_and_the_launch_files_need():
    deps = declared('gps_agent_ros')
    assert {'gps_interfaces', 'launch', 'launch_ros', 'ur_robot_driver'} <= deps
