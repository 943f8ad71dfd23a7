"""The Ray backend: the same clip and conversion tasks as the local pool, as Ray Core tasks with CPU
(and, for --device cuda, GPU) resources and ``max_retries=1`` (Ray reruns a task whose worker died
once). Ray reuses its worker processes, so models are loaded once per worker as in the local pool.

Every node must see the inputs, --out and the assets at the same paths (a shared file system) and
have the engine installed. Nothing is submitted until the cluster has answered, has the resources a
clip asks for, and a first task has found the assets and the device on a worker.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from core.batch.run import BatchConfig, Book
from core.batch.worker import ClipTask, ConvertTask, Outcome, convert_clip, run_clip
from core.errors import EXIT_INTERNAL, BadInput, StafError
from core.people.quiet import quiet_stderr

__all__ = ["CONNECT_TIMEOUT_S", "Cluster", "check_address", "connect", "run_on_ray"]

CONNECT_TIMEOUT_S = 3.0
CONNECT_ATTEMPTS = 5  # Ray's own connection attempts once the TCP probe has answered, about 1 s each
PREFLIGHT_TIMEOUT_S = 120.0


@dataclass
class Cluster:
    """A connected Ray cluster; ``owned``: this run called ``ray.init`` (and shuts it down)."""

    owned: bool
    address: str
    num_cpus: float
    num_gpus: float
    clip_gpus: float

    def close(self) -> None:
        """Disconnect (and stop the local cluster) if this run started the connection."""
        if self.owned:
            import ray

            ray.shutdown()


def _probe(address: str) -> None:
    """Refuse an address whose port does not accept a TCP connection within CONNECT_TIMEOUT_S."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        taken = " (it took an input as its address: write --ray=ADDRESS, or --ray after the inputs)" \
            if Path(address).exists() else ""
        raise BadInput(f"--ray {address}: give HOST:PORT (the head's address from 'ray start --head'), "
                       f"ray://HOST:PORT, auto, or nothing for a local cluster{taken}")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        why = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise BadInput(f"--ray {address}: no Ray cluster answers there ({why} after at most "
                       f"{CONNECT_TIMEOUT_S:g} s); start one with 'ray start --head' or check the address") from None


def _preflight(assets: str | None, device: str) -> tuple[str, int]:
    """On a worker: are the assets there and the device usable? ('' when fine, else the error line)."""
    from core.assets import require_assets, resolve_assets_dir
    from core.model.load import BACKBONE_FILE, STAF_FILE, resolve_device

    try:
        require_assets(resolve_assets_dir(assets), [STAF_FILE, "SMPL_NEUTRAL.pkl", BACKBONE_FILE], validate=False)
        resolve_device(device)
    except StafError as err:
        return f"on a Ray worker: {err}", err.exit_code
    return "", 0


def _clip_device(device: str) -> str:
    """Ray gives each task its own GPU(s) as cuda:0...: a cuda:N of the command line becomes cuda."""
    return "cuda" if device.startswith("cuda") else device


def check_address(address: str) -> None:
    """Before anything else: Ray is installed and, unless already connected, ``address`` answers."""
    # Ray tries to reach the cluster 20 times, a second apart; the TCP probe has answered: a few will do.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(CONNECT_ATTEMPTS))
    try:
        import ray
    except ImportError:
        raise BadInput("--ray needs the ray package: pip install 'staf-mocap[ray]' (ray==2.60.0)") from None
    if address and address != "auto" and not ray.is_initialized():
        _probe(address)


def connect(config: BatchConfig) -> Cluster:
    """Connect to (or start) the cluster and check it can run the clips; raises BadInput in one line.
    An already initialised Ray (``ray.init`` by the caller) is used as it is."""
    import ray

    address = config.ray or None
    owned = not ray.is_initialized()
    if owned:
        kwargs = {"include_dashboard": False} if address is None else {}
        try:
            with quiet_stderr():  # Ray's core logs every failed attempt there; the error below says why
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            hint = ""
            if address and address != "auto" and "RAY_AUTH_MODE" not in os.environ:
                hint = ("; if the cluster uses token authentication (the default of 'ray start'), set "
                        "RAY_AUTH_MODE=token and give its token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or "
                        "RAY_AUTH_TOKEN)")
            line = " ".join(str(err).split())[:300]
            raise BadInput(f"--ray {address or ''}: cannot connect ({line}){hint}") from None
    try:
        resources = ray.cluster_resources()
        gpus = config.gpus_per_clip if config.options.device.startswith("cuda") else 0.0
        cluster = Cluster(owned, address or "local", resources.get("CPU", 0.0), resources.get("GPU", 0.0), gpus)
        if cluster.num_cpus < config.cpus_per_clip:
            raise BadInput(f"the Ray cluster has {cluster.num_cpus:g} CPUs; --cpus-per-clip asks for "
                           f"{config.cpus_per_clip:g}")
        if gpus and cluster.num_gpus < gpus:
            raise BadInput(f"--device {config.options.device}: the Ray cluster has {cluster.num_gpus:g} GPUs; "
                           f"each clip asks for {gpus:g} (--gpus-per-clip)")
        check = ray.remote(max_retries=1)(_preflight).options(num_cpus=config.cpus_per_clip, num_gpus=gpus)
        try:
            error, code = ray.get(check.remote(config.options.assets, _clip_device(config.options.device)),
                                  timeout=PREFLIGHT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise BadInput(f"no Ray worker with {config.cpus_per_clip:g} CPU(s) and {gpus:g} GPU(s) free answered "
                           f"within {PREFLIGHT_TIMEOUT_S:g} s") from None
        except ray.exceptions.RayError as err:
            line = " ".join(str(err).split())[-300:]
            raise BadInput(f"a first Ray task failed (is the engine installed on the workers?): {line}") from None
        if error:
            err = StafError(error)
            err.exit_code = code
            raise err
        return cluster
    except BaseException:
        if owned:
            ray.shutdown()
        raise


def run_on_ray(book: Book, cluster: Cluster, test_kill: str | None = None) -> dict:
    """Run the book's clips and conversions as Ray tasks; returns summary meta."""
    import ray

    config = book.config
    threads = max(1, int(config.cpus_per_clip))
    clip_fn = ray.remote(max_retries=1)(run_clip).options(num_cpus=config.cpus_per_clip, num_gpus=cluster.clip_gpus)
    convert_fn = ray.remote(max_retries=1)(convert_clip).options(num_cpus=1)
    refs: dict[ray.ObjectRef, ClipTask | ConvertTask] = {}
    for task in book.clip_tasks(threads, test_kill):
        task = replace(task, options=replace(task.options, device=_clip_device(task.options.device)))
        refs[clip_fn.remote(task)] = task
    for task in book.initial_conversions:
        refs[convert_fn.remote(task)] = task
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    outcome: Outcome = ray.get(ref)
                except ray.exceptions.RayError as err:
                    died = isinstance(err, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError)
                    what = "its Ray worker died on both attempts" if died else "the Ray task failed"
                    line = " ".join(str(err).split())[:200]
                    if isinstance(task, ConvertTask):
                        book.convert_done(Outcome(task.index, "failed", 0.0, error=f"blender conversion: {what}",
                                                  exit_code=EXIT_INTERNAL))
                    else:
                        book.lost(task.index, None, f"{what} ({type(err).__name__}: {line})")
                    continue
                if isinstance(task, ConvertTask):
                    book.convert_done(outcome)
                    continue
                follow = book.clip_done(outcome, None)
                if follow is not None:
                    refs[convert_fn.remote(follow)] = follow
    except BaseException:
        for ref in refs:
            ray.cancel(ref)  # not force: the task gets KeyboardInterrupt and cleans up
        raise
    return {"workers": f"ray {cluster.address}: {cluster.num_cpus:g} CPUs, {cluster.num_gpus:g} GPUs",
            "cpus_per_clip": config.cpus_per_clip, "gpus_per_clip": cluster.clip_gpus}
