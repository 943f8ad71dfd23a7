"""Training STAF: losses, data, the single-frame base model, checkpoints and the loop."""
