"""Training: configs, the recurrent training loop and checkpoints."""
