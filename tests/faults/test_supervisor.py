from __future__ import annotations

import sys

from tests.support.services import wait_until
from workers.supervisor import ProcessSpec, Supervisor, format_status

PY = sys.executable


def _poll_until(sup: Supervisor, predicate, what: str, timeout: float = 15.0):
    def step():
        sup.poll()
        return predicate()
    return wait_until(step, timeout=timeout, what=what)


def test_crashing_child_is_restarted_then_marked_failed():
    sup = Supervisor([ProcessSpec("crasher", (PY, "-c", "import sys; sys.exit(3)"))], max_restarts=2,
                     backoff_s=0.05, backoff_max_s=0.1)
    sup.start()
    child = sup.children[0]
    _poll_until(sup, lambda: child.status == "failed", "child to be given up")
    assert child.restarts == 2 and child.last_exit == 3
    sup.shutdown()
    assert child.status == "failed"


def test_shutdown_terminates_running_children_and_kills_stubborn_ones(tmp_path):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    sup = Supervisor([ProcessSpec("sleeper", (PY, "-c", "import time; time.sleep(60)")),
                      ProcessSpec("stubborn", (PY, "-u", "-c", stubborn))], stop_timeout_s=1.0,
                     log_dir=str(tmp_path))
    sup.start()
    log_file = tmp_path / "stubborn.log"
    wait_until(lambda: log_file.exists() and b"up" in log_file.read_bytes(), what="stubborn child to ignore SIGTERM")
    pids = [c.pid for c in sup.children]
    assert all(pids)
    sup.poll()
    assert [c.status for c in sup.children] == ["running", "running"]
    sup.shutdown()
    assert [c.status for c in sup.children] == ["stopped", "stopped"]
    assert sup.children[0].last_exit == -15  # SIGTERM
    assert sup.children[1].last_exit == -9   # ignored SIGTERM, killed


def test_status_table_lists_every_child():
    sup = Supervisor([ProcessSpec("a", (PY, "-c", "pass")), ProcessSpec("b", (PY, "-c", "pass"))])
    table = format_status(sup.status_rows())
    assert table.splitlines()[1].startswith("a ") and table.splitlines()[2].startswith("b ")


def test_missing_executable_is_failed_not_crash():
    sup = Supervisor([ProcessSpec("ghost", ("/nonexistent/xreid",))])
    sup.start()
    assert sup.children[0].status == "failed"
    sup.shutdown()


def test_child_that_may_finish_and_exits_0_is_finished_not_restarted():
    sup = Supervisor([ProcessSpec("camera", (PY, "-c", "pass"), may_finish=True),
                      ProcessSpec("matcher", (PY, "-c", "import time; time.sleep(60)"))], backoff_s=0.05)
    sup.start()
    camera = sup.children[0]
    _poll_until(sup, lambda: camera.status == "finished", "the camera to finish")
    for _ in range(5):  # further polls leave it down: a restart would replay its files
        sup.poll()
    assert camera.status == "finished" and camera.restarts == 0 and camera.last_exit == 0 and camera.proc is None
    assert sup.finishers_done()
    row = sup.status_rows()[0]
    assert row["status"] == "finished" and "finished" in format_status([row]).splitlines()[1]
    sup.shutdown()
    assert [c.status for c in sup.children] == ["finished", "stopped"]


def test_child_that_may_finish_is_still_restarted_after_a_crash():
    sup = Supervisor([ProcessSpec("camera", (PY, "-c", "import sys; sys.exit(1)"), may_finish=True)], max_restarts=1,
                     backoff_s=0.05, backoff_max_s=0.1)
    sup.start()
    child = sup.children[0]
    _poll_until(sup, lambda: child.status == "failed", "the crashing camera to be given up")
    assert child.restarts == 1 and child.last_exit == 1
    assert sup.finishers_done(), "failed past its restarts: nothing left to wait for"
    sup.shutdown()


def test_service_exiting_0_is_restarted_and_finishers_are_never_done_without_finishers():
    sup = Supervisor([ProcessSpec("matcher", (PY, "-c", "pass"))], backoff_s=0.05, backoff_max_s=0.1)
    sup.start()
    child = sup.children[0]
    _poll_until(sup, lambda: child.restarts >= 1, "the service to be restarted")
    assert child.status in ("running", "backoff") and not sup.finishers_done()
    sup.shutdown()
