# Two commands for a fresh machine (Debian, CPython 3.11): `make demo` and `make test`.
# Both create/reuse .venv through `make setup`, which installs everything from this repo's files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= runs/ur5e_reach
# Small-matrix math is 5-10x faster single-threaded; DDS stays on this host.
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt src/*/setup.py src/gps_interfaces/CMakeLists.txt \
		src/gps_interfaces/action/*.action src/gps_interfaces/srv/*.srv scripts/build_interfaces.sh \
		scripts/build_test_interfaces.sh $(wildcard tests/interfaces/*/*.txt tests/interfaces/*/*/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --use-pep517 \
		-e src/gps_core -e src/gps_controllers -e src/gps_agent_ros
	scripts/build_interfaces.sh $(VENV)
	scripts/build_test_interfaces.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gps-train config/ur5e_reach.yaml --agent ros --out $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q tests src

bench: $(STAMP)
	$(PY) benchmarks/bench_update.py

clean:
	rm -rf $(VENV) build install log runs
