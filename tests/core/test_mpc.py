"""The MPC teacher's window solve against independent oracles.

- H = T - t0: the window is the rest of the trial, so its gains are those of lqr.backward_pass on the
  same quadratic over steps t0..T-1 (the trajectory optimizer's backward pass).
- A dense solve of the stacked problem: with x_j = Phi_j x0 + Gamma_j u + c_j the window's cost is a
  quadratic 1/2 u^T H u + u^T (G x0 + g) in the stacked actions u, so u* = -H^-1 (G x0 + g); its first
  block is K_0 x0 + k_0 and its value at x0 is the plan's actions. The tail of a window from t0 + j is
  again a window (principle of optimality), so a dense solve from t0 + j gives K_j, k_j.
- Time-varying systems with t0 > 0, so reading steps 0.. instead of t0.. fails.
"""
from __future__ import annotations

import numpy as np
import pytest

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.lqr import backward_pass, kl_penalty_terms
from gps_core.traj_opt.mpc import (InvalidMPCProblem, MPCConfig, MPCProblem, RecedingHorizonLaw, psd_part,
                                   solve_horizon, teacher_actions, teacher_cost)

dX, dU, T = 4, 2, 12


def random_problem(rng: np.random.Generator, T: int = T):
    """Time-varying stable-ish dynamics and convex costs with a PD action block."""
    Fm = np.concatenate([np.eye(dX) + 0.2 * rng.standard_normal((T, dX, dX)),
                         0.5 * rng.standard_normal((T, dX, dU))], axis=2)
    fv = 0.1 * rng.standard_normal((T, dX))
    L = rng.standard_normal((T, dX + dU, dX + dU))
    Cm = L @ np.swapaxes(L, 1, 2) / (dX + dU) + np.diag([0.0] * dX + [0.1] * dU)
    cv = rng.standard_normal((T, dX + dU))
    return Fm, fv, Cm, cv


def dense_window(Fm, fv, Cm, cv, t0: int, n: int):
    """(H, G, g) of the stacked window problem: cost(u) = 1/2 u^T H u + u^T (G x0 + g) + const."""
    nu = n * dU
    # z_j = M_j @ [u (nu); x0 (dX); 1]
    Mx = np.zeros((dX, nu + dX + 1))
    Mx[:, nu:nu + dX] = np.eye(dX)
    H = np.zeros((nu, nu))
    G = np.zeros((nu, dX))
    g = np.zeros(nu)
    for j in range(n):
        t = t0 + j
        Mu = np.zeros((dU, nu + dX + 1))
        Mu[:, j * dU:(j + 1) * dU] = np.eye(dU)
        M = np.vstack([Mx, Mu])
        Q = M.T @ Cm[t] @ M                      # quadratic form in [u; x0; 1]
        q = M.T @ cv[t]
        H += Q[:nu, :nu]
        G += Q[:nu, nu:nu + dX]
        g += Q[:nu, nu + dX] + q[:nu]
        Mx = Fm[t] @ M
        Mx[:, -1] += fv[t]
    return H, G, g


@pytest.mark.parametrize('t0', [0, 5])
def test_full_remaining_horizon_equals_the_backward_pass(t0):
    Fm, fv, Cm, cv = random_problem(np.random.default_rng(0))
    x0 = np.array([0.3, -1.0, 0.5, 2.0])
    plan = solve_horizon(Fm, fv, Cm, cv, t0, x0, T - t0)
    dyn = LinearGaussianDynamics(Fm[t0:], fv[t0:], np.zeros((T - t0, dX, dX)), x0, np.zeros((dX, dX)))
    ref = backward_pass(Cm[t0:], cv[t0:], dyn)
    np.testing.assert_allclose(plan.K, ref.K, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plan.k, ref.k, rtol=1e-10, atol=1e-12)
    # the plan is the noise-free rollout of that law through the mean dynamics
    x = x0
    for j in range(T - t0):
        np.testing.assert_allclose(plan.X[j], x, rtol=1e-10, atol=1e-12)
        u = ref.K[j] @ x + ref.k[j]
        np.testing.assert_allclose(plan.U[j], u, rtol=1e-10, atol=1e-12)
        x = Fm[t0 + j] @ np.concatenate([x, u]) + fv[t0 + j]


@pytest.mark.parametrize('t0, H', [(0, 4), (3, 5), (7, 5)])
def test_window_matches_a_dense_solve_of_the_stacked_problem(t0, H):
    """Time-varying system; (7, 5) runs into the trial's end and is cut to T - t0 = 5 steps."""
    Fm, fv, Cm, cv = random_problem(np.random.default_rng(1))
    x0 = np.array([1.0, 0.2, -0.7, 0.4])
    plan = solve_horizon(Fm, fv, Cm, cv, t0, x0, H)
    n = min(H, T - t0)
    assert plan.K.shape == (n, dU, dX)
    Hd, G, g = dense_window(Fm, fv, Cm, cv, t0, n)
    u_star = -np.linalg.solve(Hd, G @ x0 + g)
    np.testing.assert_allclose(plan.U.ravel(), u_star, rtol=1e-9, atol=1e-10)
    for j in range(n):                           # every gain from the dense solve of the window's tail
        Hj, Gj, gj = dense_window(Fm, fv, Cm, cv, t0 + j, n - j)
        np.testing.assert_allclose(plan.K[j], -np.linalg.solve(Hj, Gj)[:dU], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(plan.k[j], -np.linalg.solve(Hj, gj)[:dU], rtol=1e-9, atol=1e-10)


def test_truncated_window_differs_from_the_full_pass():
    """The oracle tests would pass for a solver that ignores H; a short window must give other gains."""
    Fm, fv, Cm, cv = random_problem(np.random.default_rng(2))
    full = solve_horizon(Fm, fv, Cm, cv, 0, np.zeros(dX), T)
    short = solve_horizon(Fm, fv, Cm, cv, 0, np.zeros(dX), 3)
    assert np.abs(full.K[0] - short.K[0]).max() > 1e-2
    np.testing.assert_allclose(full.K[-1], solve_horizon(Fm, fv, Cm, cv, T - 1, np.zeros(dX), 3).K[0])


def test_psd_part_of_a_hand_made_matrix():
    # eigenvalues 3 and -1 along (1, 1)/sqrt2 and (1, -1)/sqrt2: keep 3 * v v^T
    M = np.array([[1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(psd_part(M[None])[0], 1.5 * np.ones((2, 2)), atol=1e-12)
    P = np.diag([2.0, 0.5])
    np.testing.assert_allclose(psd_part(P[None])[0], P, atol=1e-12)


def test_tracking_a_feasible_reference_reproduces_it():
    """From the reference's start, with no policy term, tracking costs nothing only on the reference."""
    rng = np.random.default_rng(3)
    Fm, fv, _, _ = random_problem(rng)
    X, U = np.zeros((T, dX)), 0.3 * rng.standard_normal((T, dU))
    X[0] = rng.standard_normal(dX)
    for t in range(T - 1):
        X[t + 1] = Fm[t] @ np.concatenate([X[t], U[t]]) + fv[t]
    mu = np.concatenate([X, U], axis=1)
    cost_Cm = np.tile(np.diag([1.0, 0.0, 2.0, 0.5, 0.1, 0.2]), (T, 1, 1))
    dummy = LinearGaussianPolicy.from_covar(np.zeros((T, dU, dX)), np.zeros((T, dU)), np.tile(np.eye(dU), (T, 1, 1)))
    Cm, cv = teacher_cost(mu, cost_Cm, dummy, policy_scale=0.0)
    plan = solve_horizon(Fm, fv, Cm, cv, 0, X[0], T)
    np.testing.assert_allclose(plan.U, U, atol=1e-9)
    np.testing.assert_allclose(plan.X, X, atol=1e-9)


def test_teacher_cost_adds_the_scaled_policy_term():
    rng = np.random.default_rng(4)
    pol = LinearGaussianPolicy.from_covar(rng.standard_normal((T, dU, dX)), rng.standard_normal((T, dU)),
                                          np.tile(np.diag([0.5, 2.0]), (T, 1, 1)))
    mu = rng.standard_normal((T, dX + dU))
    C = np.tile(np.diag([1.0, 1.0, 1.0, 1.0, 0.1, 0.1]), (T, 1, 1))
    Cm, cv = teacher_cost(mu, C, pol, policy_scale=0.7, tracking_weight=2.0)
    PKLm, PKLv = kl_penalty_terms(pol)
    np.testing.assert_allclose(Cm, 2.0 * C + 0.7 * PKLm, atol=1e-12)
    np.testing.assert_allclose(cv, -2.0 * np.einsum('tij,tj->ti', C, mu) + 0.7 * PKLv, atol=1e-12)
    # the policy term alone is minimized at the policy's mean action, in any state
    x = rng.standard_normal(dX)
    z_u = -np.linalg.solve(PKLm[0][dX:, dX:], PKLm[0][dX:, :dX] @ x + PKLv[0][dX:])
    np.testing.assert_allclose(z_u, pol.K[0] @ x + pol.k[0], atol=1e-10)


@pytest.mark.parametrize('replan_every', [1, 3])
def test_law_holds_the_window_between_re_solves(replan_every):
    Fm, fv, Cm, cv = random_problem(np.random.default_rng(5))
    problem = MPCProblem(Fm, fv, Cm, cv, horizon=4, replan_every=replan_every)
    law = RecedingHorizonLaw(problem)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((T, dX))
    out = np.empty(dU)
    for t in range(T):
        law.action(t, X[t], out)
        t0 = t - t % replan_every
        window = solve_horizon(Fm, fv, Cm, cv, t0, X[t0], 4)
        np.testing.assert_allclose(out, window.K[t - t0] @ X[t] + window.k[t - t0], rtol=1e-12, atol=1e-12)
    assert law.solves == -(-T // replan_every)
    U = teacher_actions(problem, X[None])
    law.reset()
    np.testing.assert_array_equal(U[0], np.stack([law.action(t, X[t], np.empty(dU)) for t in range(T)]))


def test_problem_validation_names_the_field():
    Fm, fv, Cm, cv = random_problem(np.random.default_rng(7))
    with pytest.raises(InvalidMPCProblem, match='fv'):
        MPCProblem(Fm, fv[:-1], Cm, cv, 4, 1)
    bad = Cm.copy()
    bad[2] -= 10 * np.eye(dX + dU)
    with pytest.raises(InvalidMPCProblem, match=r'Cm\[2\] is not positive semidefinite'):
        MPCProblem(Fm, fv, bad, cv, 4, 1)
    no_u = Cm.copy()
    no_u[5][:, dX:] = no_u[5][dX:, :] = 0.0
    with pytest.raises(InvalidMPCProblem, match=r'action block of Cm\[5\]'):
        MPCProblem(Fm, fv, no_u, cv, 4, 1)
    with pytest.raises(InvalidMPCProblem, match='replan_every'):
        MPCProblem(Fm, fv, Cm, cv, 2, 3)
    cvn = cv.copy()
    cvn[0, 0] = np.nan
    with pytest.raises(InvalidMPCProblem, match='cv has 1 non-finite'):
        MPCProblem(Fm, fv, Cm, cvn, 4, 1)
    with pytest.raises(ValueError, match='replan_every'):
        MPCConfig(horizon=2, replan_every=3)
    with pytest.raises(ValueError, match='policy_weight'):
        MPCConfig(policy_weight=-1.0)
