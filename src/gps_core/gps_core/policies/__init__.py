"""Policies: time-varying linear-Gaussian controllers, their initialisation and exploration noise."""
from gps_core.policies.init_controllers import hold_pose_controller
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.noise import smoothed_noise

__all__ = ['LinearGaussianPolicy', 'hold_pose_controller', 'smoothed_noise']
