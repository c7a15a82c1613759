"""Test-wide environment: DDS stays on this host and each test run gets its own ROS domain,
so parallel runs (and other users of the machine) never see each other's topics."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))   # 1..100: valid, and not the default 0
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='gps_ros_log_'))
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
# small-network training: one torch thread is ~6x faster than two on this 2-core machine
os.environ.setdefault('OMP_NUM_THREADS', '1')
