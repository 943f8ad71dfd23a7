"""The people stage: find every person in each frame (BlazePose), follow identities, clean tracks."""
