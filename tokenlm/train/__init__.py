"""Training: hydra recipes, a trainer for single-process and torchrun runs, checkpoints that resume exactly."""
