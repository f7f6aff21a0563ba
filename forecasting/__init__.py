"""Forecasting in mask space, from the masks of frames 1-11 to frame 22's: the motion model (motion.py, fitted
numbers, no learning; its flags in motion_args.py), object tracks (tracks.py), the learned object dynamics
(dynamics.py, trained by train_dynamics.py) and SimVP, the field's method (simvp.py, trained by train_simvp.py).

Library modules import data/ and engine/ only (tests/test_layout.py); the trainers also use pipeline/ for
their val inputs.
"""
