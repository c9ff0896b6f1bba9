"""Shared test settings: one torch thread, private reference and baseline caches, and polling with a deadline instead of fixed sleeps."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import time

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op thread for every in-process test. The tests run tiny tensors, where torch's thread pool costs
    more than it gains, and on shared, busy cores OpenMP teams spin-wait and a step gets ~10x slower (measured:
    the synthetic learning test took 65 s with two threads on the loaded 2-core machine, 5 s unloaded; the toy
    regression 4 s with one thread, 29 s with two under load). Subprocesses keep torch's own choice."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def private_caches(tmp_path_factory):
    """References rendered and baselines computed by tests are cached in folders of this run (subprocesses inherit
    the variables), never in the user's ~/.cache: a test must compute what it measures, not find it from an earlier
    run."""
    names = {"N2N_REFERENCE_CACHE": "reference-cache", "N2N_BASELINE_CACHE": "baseline-cache"}
    before = {env: os.environ.get(env) for env in names}
    for env, folder in names.items():
        os.environ[env] = str(tmp_path_factory.mktemp(folder))
    yield
    for env, value in before.items():
        if value is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = value


def default_sigint() -> None:
    """`preexec_fn` for a child that a test stops with SIGINT (Ctrl-C). A test run started in the background by a
    shell without job control (CI scripts, nohup ... &) inherits SIGINT as ignored, and Python then installs no
    KeyboardInterrupt handler in the child: the signal would be dropped. A user's terminal never does this."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(pred, timeout: float = 120.0, interval: float = 0.01) -> bool:
    """Poll `pred` until it is true (True) or the generous deadline passes (False): a loaded machine is slow,
    never wrong, so tests wait for events instead of sleeping a fixed time."""
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


# --- CPU seconds per test (N2N_TEST_CPU=1): on a shared machine wall-clock durations mostly measure the other
# processes; CPU time (this process + its finished children) is what the test itself costs.
if os.environ.get("N2N_TEST_CPU"):
    _cpu: dict[str, float] = {}

    def _cpu_now() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        t0 = _cpu_now()
        yield
        _cpu[item.nodeid] = _cpu_now() - t0

    def pytest_terminal_summary(terminalreporter):
        total = sum(_cpu.values())
        terminalreporter.write_line(f"CPU seconds (self + children), total {total:.1f} s; slowest:")
        for nodeid, sec in sorted(_cpu.items(), key=lambda kv: -kv[1])[:40]:
            terminalreporter.write_line(f"{sec:8.1f}  {nodeid}")


@pytest.fixture(scope="module")
def x_display():
    """A private X server (Xvfb + Mesa) for the real viewer window; the session's display where Xvfb is missing."""
    for mod in ("glfw", "OpenGL", "imgui_bundle"):
        pytest.importorskip(mod, reason="the viewer extra is not installed (pip install 'n2n-live[viewer]')")
    if shutil.which("Xvfb") is None:
        if os.environ.get("DISPLAY"):
            yield os.environ["DISPLAY"]
            return
        pytest.skip("Xvfb is not installed (apt-get install xvfb libgl1-mesa-dri libglx-mesa0) and DISPLAY is unset")
    from n2n_live.viewer.xvfb import start_xvfb, stop_xvfb

    proc, display = start_xvfb()
    yield display
    stop_xvfb(proc)
