#!/usr/bin/env bash
# Build src/gps_interfaces (RunTrial.action, ResetArm.srv) with colcon into the venv, which is
# where the PyPI ROS 2 wheels live: rclpy then finds the generated types with no sourcing
# (the wheels' bootstrap puts <venv>/lib on LD_LIBRARY_PATH; AMENT_PREFIX_PATH=<venv>).
# On a real ROS 2 install none of this is needed: plain `colcon build` builds the package.
set -euo pipefail
VENV=${1:?usage: build_interfaces.sh VENV}
VENV=$(cd "$VENV" && pwd)
PY=$VENV/bin/python
# The wheels' exported CMake files name the Python of the image they were built in; point them
# at this venv's include dirs (idempotent; needed again after any reinstall of the ros-* wheels).
PYINC=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$($PY -c "import numpy; print(numpy.get_include())")
{ grep -rl '/opt/python/cp311-cp311/' "$VENV/share" --include='*.cmake' || true; } | xargs -r sed -i \
  -e "s#/opt/python/cp311-cp311/include/python3.11#${PYINC}#g" \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${NPINC}#g"
export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
"$VENV/bin/colcon" --log-base build/colcon-log build --base-paths src --packages-select gps_interfaces \
  --merge-install --install-base "$VENV" --build-base build \
  --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF
