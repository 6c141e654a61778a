"""Progress where users run robustalign: in a Jupyter notebook (a kernel started as a user's would be, with
stderr not a terminal) and in a terminal (a pseudo-terminal), and nothing of it under ``CI``.

Each case runs in a fresh process whose environment is the user's: without pytest's PYTEST_CURRENT_TEST
(which silences progress in tests) and without ROBUSTALIGN_PROGRESS (which would force it).
"""

import os
import re
import select
import subprocess
import sys
import time

import pytest

#: A small audit on simulated data (a few seconds): one bar for the contrasts, one phase for the resampling.
AUDIT = """
from robustalign.claims import Claim, audit_claim
from robustalign.simulate import simulate

resp, ref = simulate(n_models=3, n_items=20, n_groups=3, factors={"format": 2}, n_orders=2, rng=7).load()
claim = Claim.closer("model_1", than="model_2", group="C02")
res = audit_claim(resp, ref, claim, factors=["format"], metrics=["js"], n_resamples=50, n_permutations=50, rng=0)
print("audit done:", res.verdicts["verdict"].iloc[0])
"""

#: The smallest Bayesian fit: compiling is most of its time, shown as a phase; then the sampler's own bar.
FIT = """
import warnings
from robustalign.models import fit_response_model
from robustalign.simulate import simulate

resp, _ = simulate(n_models=2, n_items=8, n_groups=2, rng=1).load()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # 1 chain of 20 draws does not converge, and is not meant to
    fit = fit_response_model(resp, draws=20, tune=20, chains=1, rng=0)
print("fit done:", fit.idata is not None)
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: A finished bar: "m/m" units done (whatever m is) followed by the elapsed time.
FINISHED_BAR = r"contrasts\W+(\d+)/\1 \d+:\d\d:\d\d ETA"


def _user_env(ci: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "PYTEST_CURRENT_TEST", "ROBUSTALIGN_PROGRESS")}
    env.update(MPLBACKEND="Agg", COLUMNS="200", TERM="xterm-256color")
    if ci:
        env["CI"] = "true"
    return env


def _notebook_outputs(code: str, env: dict[str, str], timeout: int) -> list[dict]:
    """Run ``code`` as the one cell of an in-memory notebook in a python3 kernel started with ``env``."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3").execute(env=env)
    return list(nb.cells[0].outputs)


def _plain(outputs: list[dict]) -> str:
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)


def _terminal_output(code: str, env: dict[str, str], timeout: float) -> str:
    """Run ``python -c code`` with stdout and stderr on a pseudo-terminal; what the terminal received."""
    pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX only")
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=child,
                            stderr=child, env=env, close_fds=True)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 0.5)[0]:
                try:
                    data = os.read(main, 65536)
                except OSError:  # EIO: the child has closed its end
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"the terminal run took more than {timeout} s")
    finally:
        os.close(main)
        proc.wait(timeout=30)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def test_audit_claim_shows_progress_in_a_notebook():
    outputs = _notebook_outputs(AUDIT, _user_env(ci=False), timeout=120)
    assert not [o for o in outputs if o["output_type"] == "error"]
    shown = [o for o in outputs if o["output_type"] == "display_data"]
    text = _plain(shown)
    # one output per bar, redrawn in place, its final state kept: text for any reader and HTML for Jupyter
    assert re.search(FINISHED_BAR, text), text
    assert "bootstrap and sign flips" in text
    assert all("text/html" in o["data"] for o in shown)
    assert "contrasts" in "".join(o["data"]["text/html"] for o in shown)
    # no bar on stderr and no warning (a widget library is not needed)
    assert not [o for o in outputs if o.get("name") == "stderr"], _plain(outputs)
    assert "audit done:" in _plain(outputs)


def test_audit_claim_shows_no_progress_in_a_notebook_under_ci():
    outputs = _notebook_outputs(AUDIT, _user_env(ci=True), timeout=120)
    assert [o["output_type"] for o in outputs] == ["stream"], _plain(outputs)
    assert _plain(outputs).startswith("audit done:")


def test_audit_claim_shows_progress_in_a_terminal():
    out = _terminal_output(AUDIT, _user_env(ci=False), timeout=120)
    text = ANSI.sub("", out)
    assert re.search(FINISHED_BAR, text), text[-2000:]
    assert "bootstrap and sign flips" in text and "audit done:" in text
    assert "\x1b[?25l" in out  # drawn as a live display (cursor hidden while it runs), not printed lines


def test_audit_claim_shows_no_progress_in_a_terminal_under_ci():
    out = _terminal_output(AUDIT, _user_env(ci=True), timeout=120)
    assert ANSI.sub("", out).strip().startswith("audit done:"), out
    assert "contrasts" not in out and "\x1b[" not in out


@pytest.mark.slow
@pytest.mark.bayes
def test_a_bayesian_fit_shows_progress_in_a_notebook():
    """Minutes: the model is compiled in the fresh kernel (about 1 min on a free core, 8 on a loaded one)."""
    outputs = _notebook_outputs(FIT, _user_env(ci=False), timeout=1800)
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert "compiling the model" in _plain([o for o in outputs if o["output_type"] == "display_data"])
    assert "fit done: True" in _plain(outputs)


@pytest.mark.slow
@pytest.mark.bayes
@pytest.mark.parametrize("ci", [False, True])
def test_a_bayesian_fit_shows_progress_in_a_terminal_and_none_under_ci(ci):
    out = ANSI.sub("", _terminal_output(FIT, _user_env(ci=ci), timeout=1800))
    assert ("compiling the model" in out) is not ci, out[-2000:]
    assert "fit done: True" in out
    if ci:
        assert out.strip().startswith("fit done:"), out[-2000:]


def test_a_notebook_is_recognised_by_its_kernel_shell_and_a_terminal_ipython_is_not(monkeypatch):
    """Shells derived from ipykernel's (as Colab's is) count as notebooks; IPython in a terminal does not."""
    import types

    from robustalign import _progress

    class ZMQInteractiveShell:
        pass

    class ColabShell(ZMQInteractiveShell):
        pass

    class TerminalInteractiveShell:
        pass

    zmqshell = types.SimpleNamespace(ZMQInteractiveShell=ZMQInteractiveShell)
    for shell, expected in ((ZMQInteractiveShell(), True), (ColabShell(), True),
                            (TerminalInteractiveShell(), False), (None, False)):
        ipython = types.SimpleNamespace(get_ipython=lambda shell=shell: shell)
        monkeypatch.setitem(sys.modules, "IPython", ipython)
        monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", zmqshell)
        assert _progress._in_notebook() is expected
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell")
    assert _progress._in_notebook() is False  # no kernel loaded: a plain script or a terminal
