"""The Ray instance a command starts for itself listens on 127.0.0.1 only; a cluster named by ``$RAY_ADDRESS`` is
joined as it is.

Ray decides which address its processes (GCS server, raylet, runtime-env agent, workers) listen on when ``ray`` is
first imported: with ``LOOPBACK_ENV`` set to ``0`` it takes 127.0.0.1, as it does by default on Windows and macOS;
otherwise it takes the machine's outward address on every interface, with authentication off. Every entry point
that may start Ray (``search.run``, ``search.multitask``, ``benchmarks.search_efficiency --ray``) therefore calls
``keep_ray_on_loopback`` before anything imports ``ray``, and starts it with ``init_ray``, which checks the result.
This module imports nothing heavy, so it can be imported first.
"""

from __future__ import annotations

import os

#: Ray reads this when it is imported. Its name speaks of Windows and macOS, where 0 is Ray's default; on Linux it
#: does the same: a local instance then listens on 127.0.0.1 only.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: The address a local instance must listen on.
LOOPBACK = "127.0.0.1"


def joins_cluster() -> bool:
    """The user named a Ray cluster to join (``$RAY_ADDRESS``, other than ``local``)."""
    return os.environ.get("RAY_ADDRESS", "local") not in ("", "local")


def keep_ray_on_loopback() -> None:
    """Make a Ray instance this process starts listen on 127.0.0.1 only, with authentication off (nothing outside
    the machine can reach it). Call before ``ray`` is imported; without effect when joining ``$RAY_ADDRESS``."""
    if not joins_cluster():
        os.environ[LOOPBACK_ENV] = "0"
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def init_ray(env_vars: dict[str, str] | None = None, **options) -> bool:
    """Join ``$RAY_ADDRESS`` or start a local instance on 127.0.0.1; returns True when this call started or joined
    Ray (False: it was already initialised, and is left as it is).

    Args:
        env_vars: environment every worker gets (``runtime_env``).
        options: more ``ray.init`` keywords (``num_cpus``); the dashboard and Ray's logging setup are off.

    Raises:
        RuntimeError: a local instance came up on another address than 127.0.0.1 (``ray`` was imported before
            ``keep_ray_on_loopback``): a programming error, never a user's.
    """
    keep_ray_on_loopback()
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, runtime_env={"env_vars": dict(env_vars or {})}, include_dashboard=False,
             configure_logging=False, log_to_driver=False, **options)
    if not joins_cluster():
        where = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
        if where != {LOOPBACK}:
            ray.shutdown()
            raise RuntimeError(f"the local Ray instance listens on {', '.join(sorted(where))}, not {LOOPBACK}: "
                               f"call keep_ray_on_loopback() before ray is imported")
    return True
