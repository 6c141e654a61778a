"""Run robustalign's expensive loops on an executor: threads, processes, a Dask or a Ray cluster.

Every function here takes ``executor=None`` (serial) or anything with the
``concurrent.futures.Executor`` interface: a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a
``dask.distributed`` client's ``client.get_executor()`` (or the ``Client`` itself), a Ray
``ray.util.multiprocessing.Pool``. The numbers never depend on it: randomness is split into child
streams *before* any task is sent (``SeedSequence.spawn``), every task gets its own, and the serial run
uses the same tasks and streams in order. A result for a seed is therefore the same on a laptop and on
a cluster.

Functions sent to a cluster must be picklable: module-level functions (or ``functools.partial`` of
them), not lambdas or closures, and their arguments must pickle too.

Public names
------------
map_tasks
    ``[fn(t) for t in tasks]`` on an executor, in order.
map_chunks
    ``fn`` applied to consecutive chunks of a sequence, one task per chunk, results concatenated.
block_streams
    Child generators for consecutive blocks of resamples (the unit of randomness of a task).
bootstrap_cells
    :func:`robustalign.resampling.cluster_bootstrap` over very many cells, cells split across tasks,
    with the item resamples shared by all tasks so every cell stays paired with every other.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._rng import RngLike, as_generator

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from robustalign.resampling import BootstrapResult

__all__ = ["BLOCK_SIZE", "block_streams", "bootstrap_cells", "map_chunks", "map_tasks", "n_workers"]

#: Resamples (or permutations) drawn from one child stream. Part of the definition of a result:
#: resample ``b`` comes from child ``b // BLOCK_SIZE`` of the seed, whatever the executor or task count.
BLOCK_SIZE = 250

#: What ``executor=`` takes: None (serial), a ``concurrent.futures`` executor, a Dask ``Client`` or its
#: ``get_executor()``, a Ray ``Pool``, or anything with ``map(fn, tasks)`` or ``submit(fn, arg)`` (duck-typed).
ExecutorLike = Any


# --------------------------------------------------------------------------------------------------
# mapping
# --------------------------------------------------------------------------------------------------
def _is_dask_client(executor) -> bool:
    t = type(executor)
    return t.__module__.split(".")[0] == "distributed" and hasattr(executor, "gather") and hasattr(executor, "submit")


def map_tasks(fn: Callable, tasks: Iterable, *, executor: ExecutorLike = None) -> list:
    """``[fn(t) for t in tasks]``, run on ``executor`` when one is given; results in task order.

    Parameters
    ----------
    fn : callable
        One argument (the task). For process pools and clusters it must be picklable: a module-level
        function or a ``functools.partial`` of one.
    tasks : iterable
    executor : optional
        ``None`` (serial, in this process), anything with ``map(fn, iterable)`` in the
        ``concurrent.futures`` sense (``ThreadPoolExecutor``, ``ProcessPoolExecutor``, Dask's
        ``client.get_executor()``, a Ray ``Pool``), anything with ``submit(fn, arg) -> future``, or a
        ``dask.distributed.Client`` (tasks are submitted with ``pure=False``, so identical tasks are not
        merged, and gathered in order).

    Returns
    -------
    list
        One result per task, in the order of ``tasks``.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> from robustalign.scaleout import map_tasks
    >>> with ThreadPoolExecutor(2) as ex:
    ...     map_tasks(abs, [-3, 1, -2], executor=ex)
    [3, 1, 2]
    """
    tasks = list(tasks)
    if executor is None:
        return [fn(t) for t in tasks]
    if not tasks:
        return []
    if _is_dask_client(executor):
        return list(executor.gather(executor.map(fn, tasks, pure=False)))
    if hasattr(executor, "map"):
        return list(executor.map(fn, tasks))
    if hasattr(executor, "submit"):
        futures = [executor.submit(fn, t) for t in tasks]
        return [f.result() for f in futures]
    raise TypeError(
        f"`executor` must have the concurrent.futures interface (`map` or `submit`), e.g. a ThreadPoolExecutor "
        f"or `dask.distributed.Client(...).get_executor()`; got {type(executor).__name__}."
    )


def n_workers(executor: ExecutorLike) -> int | None:
    """How many tasks ``executor`` runs at once, when it says so (threads of a Dask cluster, pool size).

    ``None`` when unknown. Used only to choose how many tasks to make, which never changes a result.
    """
    if executor is None:
        return 1
    client = executor if _is_dask_client(executor) else getattr(executor, "_client", None)
    if client is not None and _is_dask_client(client):
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - a client that cannot answer
            return None
    n = getattr(executor, "_max_workers", None) or getattr(executor, "_processes", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def tasks_for(executor: ExecutorLike, n_items: int, *, per_worker: int = 4, default: int = 32) -> int:
    """Tasks to split ``n_items`` into: a few per worker (load balance without drowning in overhead)."""
    w = n_workers(executor)
    return max(1, min(n_items, default if w is None else per_worker * w))


def split(n: int, n_tasks: int) -> list[tuple[int, int]]:
    """``n_tasks`` contiguous ``(start, stop)`` ranges covering ``range(n)`` as evenly as possible."""
    n_tasks = max(1, min(int(n_tasks), n)) if n else 1
    bounds = np.linspace(0, n, n_tasks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a or n == 0]


def _call_chunk(args):
    fn, chunk = args
    return list(fn(chunk))


def map_chunks(fn: Callable[[list], Sequence], items: Sequence, *, executor: ExecutorLike = None,
               n_tasks: int | None = None) -> list:
    """Apply ``fn`` to consecutive chunks of ``items`` (one task per chunk) and concatenate the results.

    ``fn(chunk)`` receives a list of items and returns one result per item. Chunking cuts the per-task
    overhead of a cluster (one round trip and one copy of shared data per chunk instead of per item).
    ``n_tasks`` defaults to one task without an executor and to four per worker with one (see
    :func:`n_workers`); results must not depend on it (put randomness in the items, e.g. from
    :func:`block_streams`).
    """
    items = list(items)
    if n_tasks is None:
        n_tasks = 1 if executor is None else tasks_for(executor, len(items))
    if int(n_tasks) < 1:
        raise ValueError(f"`n_tasks` must be a positive integer; got {n_tasks}.")
    chunks = [(fn, items[a:b]) for a, b in split(len(items), n_tasks)]
    return [r for part in map_tasks(_call_chunk, chunks, executor=executor) for r in part]


def block_streams(rng: RngLike, n_total: int, block_size: int = BLOCK_SIZE) -> list[tuple[int, np.random.Generator]]:
    """``(rows, generator)`` for consecutive blocks of ``n_total`` resamples, one child stream each.

    The children are spawned from ``rng`` (``Generator.spawn``), so block ``k`` draws the same numbers
    wherever it runs. A task may take one block or several; the result is the same.
    """
    gen, _ = as_generator(rng)
    if n_total < 0:
        raise ValueError(f"`n_total` must be non-negative; got {n_total}.")
    n_blocks = math.ceil(n_total / block_size) if n_total else 0
    children = gen.spawn(n_blocks) if n_blocks else []
    return [(min(block_size, n_total - k * block_size), g) for k, g in enumerate(children)]


# --------------------------------------------------------------------------------------------------
# bootstrap over very many cells
# --------------------------------------------------------------------------------------------------
def warn_degenerate(resamples: np.ndarray, labels: pd.DataFrame, *, stacklevel: int = 3) -> None:
    """One warning for undefined replicates and one for constant statistics, over all tasks' columns."""
    from robustalign.resampling.bootstrap import check_replicates

    check_replicates(resamples, labels, stacklevel=stacklevel + 1)


def _bootstrap_task(args):
    """One task of :func:`bootstrap_cells`: the fast-path bootstrap of some cells (module level: picklable)."""
    from robustalign.resampling import cluster_bootstrap

    values, weights, labels, gen, kw = args
    # warned once for all cells by the caller; `warn=False` instead of catch_warnings, which would change
    # the process-wide warning filters from inside a worker thread
    res = cluster_bootstrap(values, weights=weights, labels=labels, rng=gen, warn=False, **kw)
    return res, gen.bit_generator.state


def bootstrap_cells(
    data: pd.DataFrame | ArrayLike,
    *,
    value: str | None = None,
    cluster: str = "item",
    by: Sequence[str] | str | None = None,
    weights: str | ArrayLike | None = None,
    labels: pd.DataFrame | Sequence | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    method: str = "bca",
    rng: RngLike = None,
    chunk_size: int | None = None,
    executor: ExecutorLike = None,
    n_tasks: int | None = None,
) -> BootstrapResult:
    """Cluster bootstrap of very many cells, the cells split across tasks, every cell paired with every other.

    The result is that of :func:`robustalign.resampling.cluster_bootstrap` on all cells at once with the
    same ``rng`` (fast path: the weighted mean of each cell over items).

    Pairing. A cluster bootstrap is paired because every cell is evaluated on the same resample of items;
    differences, ranks and flip probabilities between cells rely on it. The cells are therefore split,
    not the resamples, and **every task redraws the same item resamples** from an identical copy of the
    generator: the draws depend on the seed and the number of items only, never on the cells. Cells in
    different tasks stay paired, and the result equals the single call (the only extra cost is drawing
    the item weights once per task, small next to the cells' matrix products). Splitting the resamples
    into child streams instead would also keep pairing but would give different numbers from the
    single call and send every cell's data to every task.

    Parameters
    ----------
    data, value, cluster, by, weights, labels, n_resamples, confidence_level, method, chunk_size
        As in :func:`robustalign.resampling.cluster_bootstrap` (fast path only: no ``statistic``).
    rng : int, Generator or None
        Seed (recorded). A Generator is advanced as the single call would advance it.
    executor : optional
        See :func:`map_tasks`; ``None`` runs the tasks here, one after the other.
    n_tasks : int, optional
        Number of cell groups. Default: about 256 cells per task, at most 64 tasks. It is not derived
        from the executor, so the serial run performs the very same computations as the distributed one:
        the same item resamples, and floating results equal to about 1e-14 relative (matrix products run
        in BLAS, whose summation order depends on its thread count and the processor; README, "Same
        seed, same numbers").

    Returns
    -------
    BootstrapResult
        One statistic per cell, in the order of the cells; ``provenance["n_tasks"]`` records the split.

    Examples
    --------
    >>> import numpy as np
    >>> from robustalign.resampling import cluster_bootstrap
    >>> from robustalign.scaleout import bootstrap_cells
    >>> a = np.random.default_rng(0).normal(0.6, 0.1, size=(50, 600))   # 50 items x 600 cells
    >>> res = bootstrap_cells(a, n_resamples=500, rng=0, n_tasks=3)
    >>> one = cluster_bootstrap(a, n_resamples=500, rng=0)
    >>> bool(np.allclose(res.resamples, one.resamples, rtol=1e-12, atol=0))
    True
    """
    from robustalign.resampling.bootstrap import as_table, check_replicates

    gen, record = as_generator(rng)
    t = as_table(data, value=value, cluster=cluster, by=by, weights=weights, labels=labels)
    values, w, lab = t.values, t.weights, t.labels.reset_index(drop=True)
    n_cells = values.shape[1]
    if n_tasks is None:
        n_tasks = min(64, max(1, math.ceil(n_cells / 256)))
    if int(n_tasks) < 1:
        raise ValueError(f"`n_tasks` must be a positive integer; got {n_tasks}.")
    kw = {"n_resamples": n_resamples, "confidence_level": confidence_level, "method": method,
          "chunk_size": chunk_size}
    tasks = [(values[:, a:b], None if w is None else np.ascontiguousarray(w[:, a:b]), lab.iloc[a:b],
              copy.deepcopy(gen), kw) for a, b in split(n_cells, n_tasks)]
    out = map_tasks(_bootstrap_task, tasks, executor=executor)
    parts = [r for r, _ in out]
    gen.bit_generator.state = out[0][1]  # as far as the single call would have advanced it
    first = parts[0]
    jack = None if first.jackknife is None else np.hstack([p.jackknife for p in parts])
    res = replace(
        first,
        estimate=np.concatenate([p.estimate for p in parts]),
        resamples=np.asfortranarray(np.hstack([p.resamples for p in parts])),  # statistic-major, as the engine stores it
        jackknife=jack,
        labels=lab,
        rng=record,
        statistic=f"mean {t.meta.get('value', 'value')}",
        provenance={**first.provenance, **t.meta, "n_tasks": len(parts), "split": "cells (item resamples shared)"},
    )
    check_replicates(res.resamples, lab, stacklevel=3)
    return res
