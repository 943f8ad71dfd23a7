"""Datasets for evaluation and training: VIBE/TCMR-style ``*_db.pt`` readers and window sampling."""
