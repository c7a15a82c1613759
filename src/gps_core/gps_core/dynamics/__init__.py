"""Dynamics: linear-Gaussian fit by regression with a GMM normal-inverse-Wishart prior."""
from gps_core.dynamics.gmm import GMM
from gps_core.dynamics.gmm_prior import DynamicsPriorConfig, DynamicsPriorGMM
from gps_core.dynamics.lin_reg import fit_dynamics
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics

__all__ = ['DynamicsPriorConfig', 'DynamicsPriorGMM', 'GMM', 'LinearGaussianDynamics', 'fit_dynamics']
