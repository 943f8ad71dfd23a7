"""Subcommands of ``python -m core``. Each module has ``register(subparsers)`` adding its parser, whose
``func(args) -> int`` does the work; ``core.cli`` lists the modules in ``COMMANDS``."""
