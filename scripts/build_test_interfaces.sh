#!/usr/bin/env bash
# Build the TEST-ONLY stand-ins for the UR driver's interfaces (tests/interfaces/control_msgs,
# tests/interfaces/controller_manager_msgs: upstream definitions, see tests/interfaces/README.md)
# with colcon into the venv, the way scripts/build_interfaces.sh builds gps_interfaces. They let
# ur_reset_node and its tests run on a PyPI-only machine, where these packages have no wheels.
# A ROS 2 install has the real packages: there this script does nothing.
set -euo pipefail
VENV=${1:?usage: build_test_interfaces.sh VENV}
VENV=$(cd "$VENV" && pwd)
PY=$VENV/bin/python
REPO=$(cd "$(dirname "$0")/.." && pwd)
PACKAGES=(control_msgs controller_manager_msgs)

# Never shadow a real install: skip when a package of that name is importable from outside the
# venv (e.g. a venv created with --system-site-packages over /opt/ros/<distro>).
for pkg in "${PACKAGES[@]}"; do
  where=$("$PY" -c "import importlib.util as u; s = u.find_spec('$pkg'); print(s.origin if s else '')" 2>/dev/null || true)
  if [[ -n "$where" && "$where" != "$VENV"/* ]]; then
    echo "build_test_interfaces: $pkg is installed at $where; not building the test stand-ins" >&2
    exit 0
  fi
done

# Same CMake repointing as build_interfaces.sh (idempotent): the wheels' exported CMake files
# name the build image's Python.
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
{ grep -rl '/opt/python/cp311-cp311/' "$VENV/share" --include='*.cmake' || true; } | xargs -r sed -i \
  -e "s#/opt/python/cp311-cp311/include/python3.11#${PYINC}#g" \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${NPINC}#g"
export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
cd "$REPO"
# --paths names the packages one by one: tests/interfaces/COLCON_IGNORE hides them from crawls.
"$VENV/bin/colcon" --log-base build/colcon-log build \
  --paths "${PACKAGES[@]/#/tests/interfaces/}" \
  --merge-install --install-base "$VENV" --build-base build \
  --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF
