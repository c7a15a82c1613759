"""The MPC teacher as the arm runs it, on a known linear system (a 2-D point mass).

Offline solution: lqr.backward_pass on the task's quadratic cost (the DARE cost-to-go at the last step),
its noise-free trajectory (x_bar, u_bar) from x0 the reference. The teacher tracks that reference in the
task cost's own metric, so (module docstring of gps_core.traj_opt.mpc):
- without disturbance it reproduces the offline actions exactly, for any horizon and re-solve period;
- after a state kick, with windows reaching the trial's end, it acts as the offline LQR's feedback law
  from the kicked state, and with short windows it still returns to the reference, where the offline
  solution's open-loop actions u_bar drift away for good (a double integrator keeps a velocity kick).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.mpc_controller import MPCController, MPCSpec
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.lqr import backward_pass
from gps_core.traj_opt.mpc import MPCProblem, teacher_cost

DT, T = 0.1, 40
A = np.block([[np.eye(2), DT * np.eye(2)], [np.zeros((2, 2)), np.eye(2)]])
B = np.vstack([0.5 * DT ** 2 * np.eye(2), DT * np.eye(2)])
dX, dU = 4, 2
X0 = np.array([1.0, -0.5, 0.0, 0.2])
KICK_T, KICK = 12, np.array([0.0, 0.0, 1.5, -1.0])     # a velocity kick before step 12's action


def offline():
    """(task Cm [T, 6, 6], offline LQR policy, reference mu [T, 6], dynamics Fm, fv)."""
    Q, R = np.diag([1.0, 2.0, 0.1, 0.1]), np.diag([0.05, 0.1])
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    AB = np.hstack([A, B])
    C = np.tile(scipy.linalg.block_diag(Q, R), (T, 1, 1))
    C[-1] += AB.T @ P @ AB
    Fm, fv = np.tile(AB, (T, 1, 1)), np.zeros((T, dX))
    dyn = LinearGaussianDynamics(Fm, fv, np.zeros((T, dX, dX)), X0, np.zeros((dX, dX)))
    lqr = backward_pass(C, np.zeros((T, dX + dU)), dyn)
    mu, x = np.zeros((T, dX + dU)), X0
    for t in range(T):
        u = lqr.K[t] @ x + lqr.k[t]
        mu[t] = np.concatenate([x, u])
        x = A @ x + B @ u
    return C, lqr, mu, Fm, fv


def teacher(horizon: int, replan_every: int, noise=None) -> MPCController:
    C, lqr, mu, Fm, fv = offline()
    dummy = LinearGaussianPolicy.from_covar(np.zeros((T, dU, dX)), np.zeros((T, dU)), np.tile(np.eye(dU), (T, 1, 1)))
    Cm, cv = teacher_cost(mu, C, dummy, policy_scale=0.0)
    return MPCController(MPCSpec(MPCProblem(Fm, fv, Cm, cv, horizon, replan_every), noise), T, dX, dU)


def rollout(act, kick: bool) -> tuple[np.ndarray, np.ndarray]:
    """X [T, dX], U [T, dU] on the true system; act(t, x) -> u. The kick is added to x_KICK_T."""
    X, U, x = np.zeros((T, dX)), np.zeros((T, dU)), X0.copy()
    for t in range(T):
        if kick and t == KICK_T:
            x = x + KICK
        X[t], U[t] = x, act(t, x)
        x = A @ x + B @ U[t]
    return X, U


def controller_act(ctrl: MPCController):
    out = np.empty(dU)
    return lambda t, x: ctrl.command(t, x, out).copy()


@pytest.mark.parametrize('horizon, replan_every', [(T, 1), (5, 1), (6, 3)])
def test_without_disturbance_it_reproduces_the_offline_actions(horizon, replan_every):
    _, lqr, mu, _, _ = offline()
    ctrl = teacher(horizon, replan_every)
    X, U = rollout(controller_act(ctrl), kick=False)
    np.testing.assert_allclose(U, mu[:, dX:], atol=1e-9)
    np.testing.assert_allclose(X, mu[:, :dX], atol=1e-9)
    assert ctrl.solves == -(-T // replan_every)


def test_full_windows_after_a_kick_act_as_the_offline_feedback_law():
    _, lqr, _, _, _ = offline()
    X, U = rollout(controller_act(teacher(T, 1)), kick=True)
    np.testing.assert_allclose(U, np.einsum('tux,tx->tu', lqr.K, X) + lqr.k, atol=1e-8)


def test_after_a_kick_short_windows_return_to_the_reference_and_open_loop_does_not():
    _, _, mu, _, _ = offline()
    X_mpc, _ = rollout(controller_act(teacher(8, 2)), kick=True)
    X_ol, _ = rollout(lambda t, x: mu[t, dX:], kick=True)
    dev_mpc = np.linalg.norm(X_mpc - mu[:, :dX], axis=1)
    dev_ol = np.linalg.norm(X_ol - mu[:, :dX], axis=1)
    kick = np.linalg.norm(KICK)
    X_calm, _ = rollout(controller_act(teacher(8, 2)), kick=False)
    np.testing.assert_array_equal(X_mpc[:KICK_T], X_calm[:KICK_T])    # nothing before the kick
    assert dev_mpc[KICK_T] == pytest.approx(kick)
    assert dev_mpc[-1] < 0.03 * kick                       # back on the reference (full windows: 0.006 kick)
    assert np.all(dev_ol[KICK_T + 5:] > kick)              # the velocity error integrates into position
    assert dev_ol[-1] > 2.5 * kick


def test_noise_is_added_to_the_teacher_action():
    noise = np.random.default_rng(0).standard_normal((T, dU))
    plain, noisy = teacher(5, 1), teacher(5, 1, noise)
    x, a, b = np.array([0.3, 0.1, -0.2, 0.4]), np.empty(dU), np.empty(dU)
    for t in range(T):
        np.testing.assert_allclose(noisy.command(t, x, b), plain.command(t, x, a) + noise[t], atol=1e-12)


def test_invalid_descriptions_are_rejected_with_the_reason():
    C, _, mu, Fm, fv = offline()
    ctrl = teacher(5, 1)
    spec = MPCSpec(ctrl._law.problem)
    with pytest.raises(InvalidController, match='dX=4'):
        MPCController(spec, T, dX + 1, dU)
    with pytest.raises(InvalidController, match=r'noise must be \[T, du\]'):
        MPCController(MPCSpec(spec.problem, np.zeros((T - 1, dU))), T, dX, dU)
    bad = C.copy()
    bad[3, dX:, dX:] = 0.0
    with pytest.raises(InvalidController, match=r'action block of Cm\[3\]'):
        MPCController.from_arrays(Fm, fv, bad, np.zeros((T, dX + dU)), 5, 1, None, T, dX, dU)
    with pytest.raises(IndexError):
        ctrl.command(T, np.zeros(dX), np.empty(dU))
