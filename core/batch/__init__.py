"""Many clips at once: ``python -m core batch INPUTS... --out DIR`` (docs/batch.md).

``inputs`` expands files, folders, globs and CSV manifests; ``plan`` gives each clip its options and
a unique output name and finds what is already done; ``worker`` is what runs in a worker process;
``local`` runs the tasks on a process pool, ``ray_runner`` on a Ray cluster; ``summary`` writes the
per-clip record; ``run`` ties them together (``run_batch``).
"""

from core.batch.run import BatchConfig, run_batch

__all__ = ["BatchConfig", "run_batch"]
