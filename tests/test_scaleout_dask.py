"""Scale-out on a real dask.distributed cluster (two worker processes on loopback): the multiverse of a
claim over more than 100 specifications, simulated power and the many-cell bootstrap give the serial
numbers for the same seed.

What is exact and what is not (README, "Same seed, same numbers"): the random draws (which resamples,
which sign flips), counts and verdicts are the same; floating results are equal to ``RTOL`` relative,
because matrix products run in BLAS, whose summation order depends on its thread count (the workers run
one BLAS thread, the client several) and on the processor's kernel. On a 2-core machine 2 of 900
standard errors of the many-cell bootstrap differed in the last bits (relative 1e-14) between one and
two BLAS threads.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from robustalign.claims.multiverse import Claim, audit_claim, enumerate_specifications
from robustalign.power import simulate_power
from robustalign.resampling import cluster_bootstrap
from robustalign.scaleout import block_streams, bootstrap_cells, map_chunks, map_tasks, split
from robustalign.simulate import simulate

distributed = pytest.importorskip("distributed")

#: Relative tolerance for floating results computed in another process (1e-14 differences measured).
RTOL = 1e-12
ATOL = 1e-14


@pytest.fixture(scope="module")
def client():
    import threading

    before = set(threading.enumerate())
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        _stop_dask_threads(before)


def _stop_dask_threads(before: set, wait_s: float = 10.0) -> None:
    """Leave the test process without Dask's threads, as it was before this module.

    distributed keeps one module-level thread pool ("Dask-Offload") alive for the life of the process once
    a client has used it. A later test file on the same worker process then runs with a second thread, and
    the audit rightly refuses to fork (``report._steps._can_fork``): the parallel-route tests would see the
    serial route. The pool is shut down and replaced by a fresh one, which starts no thread until used.
    """
    import threading
    import time

    import distributed.utils as du

    du._offload_executor.shutdown(wait=True)
    du._offload_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="Dask-Offload")

    def left() -> list[str]:  # started since the cluster was, less pytest-timeout's timers and tqdm's monitor
        return [t.name for t in threading.enumerate()
                if t not in before and not t.name.startswith(("pytest_timeout", "tqdm_monitor"))]

    deadline = time.monotonic() + wait_s  # the cluster's IO-loop and watcher threads end on their own
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left(), f"threads left by the Dask cluster: {left()}"


@pytest.fixture(scope="module")
def multiverse():
    # format 3 levels + pooled, template 2 + pooled, one option order; 7 default metrics on ordinal items x 2
    # aggregations less the median of plurality: 4 x 3 x 13 = 156 specifications, in several chunks per worker (the benchmark,
    # bench/bench_scaleout.py, runs the 216 of 5 formats and 3 templates)
    s = simulate(n_models=3, n_items=30, n_groups=3, factors={"format": 3, "template": 2}, n_orders=1, rng=11)
    r, ref = s.load()
    return r, ref, Claim.closer("model_1", than="model_2", group="C01")


def _pvalue(gen):  # module level: pickled to the workers
    from scipy import stats

    x = gen.normal(0.3, 1.0, 25)
    return stats.ttest_1samp(x, 0.0).pvalue


def _square(x):
    return x * x


def _squares(chunk):
    return [x * x for x in chunk]


def test_multiverse_of_156_specifications_on_the_cluster_equals_the_serial_run(multiverse, client):
    r, ref, claim = multiverse
    assert len(enumerate_specifications(r, claim, reference=ref)) == 156
    kw = {"n_resamples": 300, "n_permutations": 500, "rng": 2024}
    serial = audit_claim(r, ref, claim, **kw)
    dist = audit_claim(r, ref, claim, executor=client.get_executor(), **kw)
    f = serial.to_frame()
    assert len(f) >= 156
    pd.testing.assert_frame_equal(f, dist.to_frame(), rtol=RTOL, atol=ATOL)
    pd.testing.assert_frame_equal(serial.verdicts, dist.verdicts, rtol=RTOL, atol=ATOL)
    assert serial.verdicts["verdict"].tolist() == dist.verdicts["verdict"].tolist()
    np.testing.assert_allclose(serial.evidence["bootstrap"].resamples, dist.evidence["bootstrap"].resamples,
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(serial.evidence["contrasts"], dist.evidence["contrasts"], rtol=RTOL, atol=ATOL)
    _same_joint(serial.evidence["joint"], dist.evidence["joint"])
    # intervals and p-values are real draws, not constants that would match trivially
    est = f["conf_low"].notna()  # JS (< 10 answers per cell) and TV (< 30) specifications are not estimable (NaN)
    assert est.sum() >= 50 and f.loc[est, "conf_high"].gt(f.loc[est, "conf_low"]).all() and f["p_value"].nunique() > 10


def _same_joint(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], str):  # the name of the joint test
            assert a[k] == b[k]
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL)


def test_simulate_power_on_the_cluster_equals_the_serial_run(client):
    serial = simulate_power(_pvalue, n_simulations=120, rng=3)
    dist = simulate_power(_pvalue, n_simulations=120, rng=3, executor=client.get_executor())
    assert serial == dist
    assert 0 < serial.power < 1


def test_bootstrap_cells_on_the_cluster_equals_serial_and_one_cluster_bootstrap(client):
    rng = np.random.default_rng(5)
    item = rng.normal(0, 1, (60, 1))
    a = 0.5 + item + rng.normal(0, 0.2, (60, 900))
    a[rng.random(a.shape) < 0.05] = np.nan  # items missing in some cells: weighted path
    labels = pd.DataFrame({"model": np.repeat([f"m{i}" for i in range(90)], 10), "cond": np.tile(range(10), 90)})
    kw = {"labels": labels, "n_resamples": 400, "rng": 9, "n_tasks": 4}
    serial = bootstrap_cells(a, **kw)
    dist = bootstrap_cells(a, executor=client, **kw)
    pd.testing.assert_frame_equal(serial.to_frame(), dist.to_frame(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(serial.resamples, dist.resamples, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(serial.jackknife, dist.jackknife, rtol=RTOL, atol=ATOL)
    # pairing across tasks: the result is the single call's, cells of different tasks share each resample
    one = cluster_bootstrap(a, labels=labels, n_resamples=400, rng=9)
    np.testing.assert_allclose(serial.resamples, one.resamples, rtol=1e-12, atol=0)
    far = {"model": ["m0", "m45", "m89"]}  # cells in the first, third and last task
    pd.testing.assert_frame_equal(serial.subset(**far).pairwise("model", within="cond").to_frame(),
                                  one.subset(**far).pairwise("model", within="cond").to_frame(), rtol=1e-10)
    assert serial.provenance["n_tasks"] == 4


def test_map_tasks_keeps_order_on_every_kind_of_executor(client):
    xs = list(range(-20, 20))
    want = [x * x for x in xs]
    assert map_tasks(_square, xs) == want
    assert map_tasks(_square, xs, executor=client) == want
    assert map_tasks(_square, xs, executor=client.get_executor()) == want
    with ThreadPoolExecutor(3) as ex:
        assert map_tasks(_square, xs, executor=ex) == want
    assert map_chunks(_squares, xs, executor=client, n_tasks=7) == want
    assert map_tasks(_square, [], executor=client) == []
    with pytest.raises(TypeError, match="concurrent.futures interface"):
        map_tasks(_square, xs, executor=object())


def test_blocks_and_splits_do_not_depend_on_grouping():
    rows = [r for r, _ in block_streams(0, 1001)]
    assert rows == [250, 250, 250, 250, 1]
    a = [g.random() for _, g in block_streams(0, 1001)]
    b = [g.random() for _, g in block_streams(0, 1001)]
    assert a == b and len(set(a)) == 5
    assert split(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert split(2, 5) == [(0, 1), (1, 2)]


def test_task_counts_follow_the_workers_but_never_change_the_numbers(client):
    from robustalign.claims.multiverse import joint_sign_flip
    from robustalign.scaleout import n_workers

    assert n_workers(client) == n_workers(client.get_executor()) == 2
    assert n_workers(None) == 1 and n_workers(object()) is None
    d = np.random.default_rng(0).normal(0.1, 1, (30, 12, 1))
    aggs = np.array(["mean", "median"] * 6)
    with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(3) as three:
        runs = [joint_sign_flip(d, aggs, n_permutations=1100, gen=np.random.default_rng(4), executor=ex)
                for ex in (None, client, one, three)]
    for other in runs[1:]:
        _same_joint(runs[0], other)


def test_readme_remote_cluster_code_runs_against_a_scheduler_address(client):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    code = readme.split("## Scaling out", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert 'Client("tcp://scheduler:8786")' in code
    code = (code.replace('"tcp://scheduler:8786"', repr(client.scheduler.address))
            .replace('"model-a"', '"model_1"').replace('"model-b"', '"model_2"').replace('"Japan"', '"C01"'))
    s = simulate(n_models=2, n_items=20, n_groups=2, factors={"format": 2}, n_orders=1, rng=4)
    resp, ref = s.load()
    ns = {"resp": resp, "ref": ref}
    exec(compile(code, "README.md", "exec"), ns)
    try:
        serial = audit_claim(resp, ref, Claim.closer("model_1", than="model_2", group="C01"), rng=2024)
        pd.testing.assert_frame_equal(ns["res"].to_frame(), serial.to_frame(), rtol=RTOL, atol=ATOL)
    finally:
        ns["client"].close()
