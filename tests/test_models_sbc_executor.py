"""SBC gives the same ranks serially and on an executor (child stream per simulation)."""

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

pytestmark = pytest.mark.bayes


def test_sbc_on_an_executor_equals_the_serial_run():
    from robustalign.models.calibration import sbc_design, sbc_response_model

    d = sbc_design(n_models=3, n_items=4, n_levels=3)
    kw = dict(design=d, draws=40, tune=40, chains=1, n_keep=19, rng=123)
    serial = sbc_response_model(4, **kw)
    with ThreadPoolExecutor(2) as ex:
        parallel = sbc_response_model(4, executor=ex, **kw)
    pd.testing.assert_frame_equal(serial.ranks, parallel.ranks)
    assert (serial.divergences == parallel.divergences).all()
    assert serial.ranks.to_numpy().min() >= 0 and serial.ranks.to_numpy().max() <= 19
