"""gps_core: the Guided Policy Search math, free of ROS and simulators.

Data flows sample -> dynamics -> trajectory update -> policy:
  samples.SampleBatch            X [N, T, dX], U [N, T, dU]
  dynamics.fit_dynamics          -> LinearGaussianDynamics (per-step F_t, f_t, Sigma_t)
  costs.*                        -> batched derivatives l, lx, lu, lxx, luu, lux
  traj_opt.KLTrajOpt             -> new LinearGaussianPolicy with KL(p_new || p_old) ~= epsilon
  algorithms.TrajOptAlgorithm    one GPS iteration per condition
  policies.nn_policy / policy_opt / policy_prior
                                 the network pi_theta(u|o), its precision-weighted regression onto
                                 the controllers, its GMM-prior linearization (torch)
  algorithms.mdgps / badmm       GPS with the network: C-step against the linearized policy, S-step
"""
