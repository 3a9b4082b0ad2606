"""What the warm run launcher's template does before it forks (``dp_instance.warm_template``):
import what run workers import, load the code location, open the Dagster instance, then close
every connection all that left open, so that children share none (``fork_hazards`` checks).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import socket
import sys
import threading
from typing import Any

log = logging.getLogger("dp.warm_template")

#: Dagster's modules a run worker needs and the location load does not import.
RUN_WORKER_MODULES = (
    "dagster._cli.api",
    "dagster._core.execution.api",
    "dagster._core.execution.plan.execute_plan",
    "dagster._core.executor.in_process",
    "dagster._core.executor.multiprocess",
    "dagster._core.storage.fs_io_manager",
    # imported when a run's config is resolved (every run with params)
    "dagster._core.system_config.composite_descent",
)


def preload(origin: Any, instance_ref: Any) -> None:
    """Import what a run worker imports and load the code location once; then call the location
    module's ``prepare_run_worker()`` when it has one, to import what its runs use and a load
    does not (``dp_assets.definitions``: pandas, numpy, pyarrow, the node modules)."""
    from dagster._utils.hosted_user_process import recon_repository_from_origin

    working_directory = getattr(origin.code_pointer, "working_directory", None)
    if working_directory:
        os.chdir(working_directory)
        if working_directory not in sys.path:
            sys.path.insert(0, working_directory)
    import_run_worker_modules(instance_ref)
    recon_repository_from_origin(origin).get_definition()
    prepare = getattr(location_module(origin.code_pointer), "prepare_run_worker", None)
    if callable(prepare):
        prepare()
    close_database_pools()


def import_run_worker_modules(instance_ref: Any) -> None:
    """Import Dagster's run-worker modules and the instance's storage classes (a child opens the
    instance; this only imports them). bench's warm rows start their runs from here too."""
    for name in RUN_WORKER_MODULES:
        importlib.import_module(name)
    for value in instance_ref._asdict().values():
        module = getattr(value, "module_name", None)
        if isinstance(module, str):
            importlib.import_module(module)


def location_module(code_pointer: Any) -> Any:
    """The loaded module a code pointer names (``-m module`` or ``-f file``), or None."""
    name = getattr(code_pointer, "module", None)
    if name:
        return sys.modules.get(name)
    path = getattr(code_pointer, "python_file", None)
    if not path:
        return None
    wanted = os.path.realpath(path)
    for module in list(sys.modules.values()):
        found = getattr(module, "__file__", None)
        if found and os.path.realpath(found) == wanted:
            return module
    return None


def open_instance(instance_ref: Any) -> Any:
    """The Dagster instance a child would open from ``instance_ref`` (as ``dagster api
    execute_run`` does, with the working directory's ``.env``), opened once here; None when it
    cannot be opened (each child then tries, and its run reports why)."""
    from dagster import DagsterInstance
    from dagster._cli.utils import _inject_local_env_file

    try:
        with _inject_local_env_file(log):
            instance = DagsterInstance.from_ref(instance_ref)
    except Exception as exc:  # noqa: BLE001 - a child opening its own gives the run the error
        log.warning("warm template: children open their own instance: %s", exc)
        return None
    warm_instance(instance)
    return instance


#: A run id and an asset key no run has: the warm-up's reads find nothing and change nothing.
_NO_SUCH_RUN = "dp-warm-template-no-such-run"
_NO_SUCH_ASSET = ("dp-warm-template", "no-such-asset")


def warm_instance(instance: Any) -> None:
    """Ask the instance, once, the read-only questions every run worker asks first, so that the
    forked children inherit the answers instead of paying for them in each run (in a child,
    these reads took 27 ms of CPU without it and 10 ms with it): the run coordinator built from its config (Dagster
    rehydrates it lazily, validating the config, for the run's concurrency settings), the
    storages' engines with their compiled SQL statements (SQLAlchemy compiles a statement
    shape once per engine), and the schema answers the storages keep (``dp_instance.sql_storage``).
    Reads only: nothing is written, so the history is the same with or without a template. A
    question that fails is left for the children to ask."""
    from dagster import AssetKey

    warm_ups = (
        lambda: instance.get_concurrency_config(),  # builds the run coordinator
        lambda: instance.get_run_by_id(_NO_SUCH_RUN),
        lambda: instance.get_asset_records([AssetKey(list(_NO_SUCH_ASSET))]),
        lambda: instance.get_records_for_run(_NO_SUCH_RUN, limit=1),
    )
    for warm_up in warm_ups:
        try:
            warm_up()
        except Exception as exc:  # noqa: BLE001 - an optimisation: the run that asks reports it
            log.info("warm template: a warm-up read failed (%s); each run asks it", exc)


def close_database_pools() -> None:
    """Close the connections the location's load left in SQLAlchemy pools (the flow store's,
    on PostgreSQL): children must not share them, and an idle template should not hold them.
    A pool opens new connections when it is used again."""
    import sqlalchemy as sa

    gc.collect()
    for engine in [obj for obj in gc.get_objects() if isinstance(obj, sa.engine.Engine)]:
        engine.dispose()


def fork_hazards() -> list[str]:
    """What would make forking this process unsafe: threads besides the main one, and open
    network sockets (a database connection the children would share)."""
    hazards = [f"thread {t.name}" for t in threading.enumerate() if t is not threading.main_thread()]
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            try:
                family = socket.socket(fileno=os.dup(int(fd)))
            except OSError:
                continue
            try:
                if family.family in (socket.AF_INET, socket.AF_INET6):
                    hazards.append(
                        f"network socket fd {fd} ({family.getpeername() if _connected(family) else 'unconnected'})"
                    )
            finally:
                family.close()
    return hazards


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True
