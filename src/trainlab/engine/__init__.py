"""The engine that training and inference both stand on: device and RNG runtime (runtime), the training step
and the evaluation loop (loop), losses, torchrun's processes and collectives (distributed), and the Reporter
protocol a run talks through (reporting). It imports nothing above data and models.

This package's own __init__ imports nothing, so that `trainlab.engine.runtime` alone stays light.
"""
