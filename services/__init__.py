"""The Xianjie services: trajectory, mediation, notify."""
