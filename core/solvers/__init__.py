"""Solvers that turn a person's track into SMPL motion without the STAF network (see ``landmarks``)."""
