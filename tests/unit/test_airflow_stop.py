"""stop_airflow also ends the process groups of Airflow's tasks (each task runs in a group of its
own, which the standalone's group signal does not reach), e.g. a retrain's cmdstan fit."""

from __future__ import annotations

import subprocess
import sys
import time

from rtcrypto.stack import airflow, process

_PARENT = """
import subprocess, sys, time
child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a task's own group
print(child.pid, flush=True)
time.sleep(60)
"""


def test_task_groups_below_a_process_are_found_and_not_its_own() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        groups = airflow.task_process_groups(parent.pid)
        assert groups == {child}  # the child leads its own group; the parent's is left out
        assert airflow._signal_group(child, 9)
        deadline = time.monotonic() + 5
        while process.pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process.pid_alive(child)
        assert not airflow._group_running(child)  # a zombie until reaped: not running
    finally:
        parent.kill()
        parent.wait()
