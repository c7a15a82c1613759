"""composed_arm: a simulated arm's sim_node and controller_node in one process, on one executor.

The two stay separate ROS nodes with the topics, service and action of sim_node and
controller_node (`ros2 node list` shows both; parameters and remappings as for the two
executables, e.g. one --params-file keyed /ns/sim_node and /ns/controller_node). What changes is
the transport: Fast DDS hands their messages over inside the process (no shared-memory segment,
no wake-up of another process), and in lockstep the step's chain, command -> physics ->
joint_states -> controller -> command, runs on one thread without sleeping: a lockstep trial takes
less CPU than with the two processes (measured in benchmarks/README.md, bench_parallel).

For simulated arms only: a real arm's controller_node runs beside its driver, never inside it.
Either node failing ends the process, and so the arm (the trainer takes it out of the pool).

    gps-bringup config/ur5e_reach.yaml --arms 2 --compose      # or gps-train ... --compose
"""
from __future__ import annotations

import os
import sys

from rclpy.node import Node

from gps_agent_ros.node_runtime import run_node


def main(args: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a network policy runs on one thread
    import torch  # noqa: F401 - now, not in the first policy goal's callback (a 1-2 s stall)

    from gps_agent_ros.controller_node import ControllerNode, stop_controller
    from gps_agent_ros.sim_node import SimNode

    def sim_nodes(_controller: Node) -> list[Node]:
        sim = SimNode()
        return [sim] + ([sim.sensor] if sim.sensor is not None else [])

    # the controller is the process's main node: on SIGINT/SIGTERM it zeroes the arm and hands
    # its last result over while the simulator still spins
    return run_node(ControllerNode, "composed_arm", args, stop_controller, extra=sim_nodes)


if __name__ == "__main__":
    sys.exit(main())
