"""Evaluation: the metrics and the protocol of the STAF/VIBE/TCMR papers."""
