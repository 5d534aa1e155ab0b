"""Training: losses (heatmap + VSD mutual information), trainer, checkpoints, DDP launch.

Import submodules directly (``from tdmi_core.train.losses import TDMILoss``); nothing is
imported here so ``import tdmi_core.train`` stays cheap.
"""
