"""LinearGaussianController: u_t = K_t x + k_t by hand, and every validation path of from_flat
names what was expected and what arrived."""
from __future__ import annotations

import numpy as np
import pytest

from gps_controllers.linear_gaussian_controller import InvalidController, LinearGaussianController

# T=2, dU=2, dX=3
K = np.array([[[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]],
              [[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
k = np.array([[0.5, -0.5], [10.0, 20.0]])


def test_command_by_hand():
    ctrl = LinearGaussianController(K, k)
    x = np.array([1.0, 2.0, 4.0])
    out = np.empty(2)
    # t=0: [1+4+12, -2+2] + [0.5, -0.5] = [17.5, -0.5]
    assert ctrl.command(0, x, out) is out
    np.testing.assert_array_equal(out, [17.5, -0.5])
    # t=1: [2, 7] + [10, 20] = [12, 27]
    np.testing.assert_array_equal(ctrl.command(1, x, out), [12.0, 27.0])


def test_from_flat_is_row_major_and_copies():
    gains, offsets = K.ravel().copy(), k.ravel().copy()
    ctrl = LinearGaussianController.from_flat(gains, offsets, T=2, du=2, dx=3,
                                              expected_dx=3, expected_du=2)
    gains[:] = np.nan  # the caller's buffer changing later must not reach the controller
    np.testing.assert_array_equal(ctrl.K, K)
    np.testing.assert_array_equal(ctrl.k, k)
    assert (ctrl.T, ctrl.dU, ctrl.dX) == (2, 2, 3)
    assert not ctrl.K.flags.writeable and not ctrl.k.flags.writeable


def test_command_outside_horizon_raises():
    ctrl = LinearGaussianController(K, k)
    with pytest.raises(IndexError, match=r"t=2 outside the horizon \[0, 2\)"):
        ctrl.command(2, np.zeros(3), np.empty(2))
    with pytest.raises(IndexError, match="t=-1"):
        ctrl.command(-1, np.zeros(3), np.empty(2))


def test_command_allocates_nothing_new():
    ctrl = LinearGaussianController(K, k)
    x, out = np.ones(3), np.empty(2)
    before = out.__array_interface__["data"][0]
    ctrl.command(1, x, out)
    assert out.__array_interface__["data"][0] == before


def flat(**overrides):
    args = dict(gains=K.ravel(), offsets=k.ravel(), T=2, du=2, dx=3, expected_dx=3, expected_du=2)
    args.update(overrides)
    return LinearGaussianController.from_flat(**args)


@pytest.mark.parametrize("overrides, message", [
    (dict(T=0, gains=[], offsets=[]), r"horizon T must be >= 1, got 0"),
    (dict(dx=4), r"state size dx=4 does not match the robot's dx=3"),
    (dict(du=3), r"action size du=3 does not match the robot's du=2"),
    (dict(gains=K.ravel()[:-1]), r"gains must have T\*du\*dx = 2\*2\*3 = 12 entries .* got 11"),
    (dict(offsets=np.zeros(5)), r"offsets must have T\*du = 2\*2 = 4 entries .* got 5"),
    (dict(gains=np.r_[K.ravel()[:4], np.nan, K.ravel()[5:]]),
     r"gains K has 1 non-finite entries \(first at index \(0, 1, 1\): nan\)"),
    (dict(offsets=[0.0, 0.0, np.inf, -np.inf]),
     r"offsets k has 2 non-finite entries \(first at index \(1, 0\): inf\)"),
])
def test_from_flat_validation_names_the_problem(overrides, message):
    with pytest.raises(InvalidController, match=message):
        flat(**overrides)


def test_constructor_validates_shapes():
    with pytest.raises(InvalidController, match=r"K must have shape \[T, dU, dX\], got \(2, 3\)"):
        LinearGaussianController(np.zeros((2, 3)), np.zeros((2,)))
    with pytest.raises(InvalidController, match=r"k must have shape \(2, 2\) .* got \(2, 3\)"):
        LinearGaussianController(K, np.zeros((2, 3)))


def test_invalid_controller_is_a_value_error():
    assert issubclass(InvalidController, ValueError)
