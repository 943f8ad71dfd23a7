"""Training STAF: losses, data, the single-frame base model, checkpoints, the configuration, validation
and the loop."""
