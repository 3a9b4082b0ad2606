"""A warm template outlives neither its launcher nor its idle time (dp_instance.warm_template).

The template stops serving, once no run is going, when the process that started it (a daemon, a
webserver) is gone. That launcher may stop while the template is still loading: by the time the
template serves, it already belongs to init, so "my parent changed" must be judged against the
launcher's pid as it started the template, or the orphan serves for its whole idle time (an hour
as shipped; seen after a CI run, its daemon stopped two seconds before it was ready).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path

from dp_instance.warm_template import Template


def _serve_in_thread(launcher_pid: int | None) -> tuple[threading.Thread, Template]:
    folder = Path(tempfile.mkdtemp(prefix="dp-tpl-", dir="/tmp"))  # a socket name fits 107 bytes
    template = Template(str(folder / "t.sock"), max_workers=1, idle_seconds=3600)
    template.listen()
    thread = threading.Thread(target=template.serve, args=(launcher_pid,), daemon=True)
    thread.start()
    return thread, template


def _a_pid_that_has_exited() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_a_template_whose_launcher_stopped_while_it_loaded_stops_serving() -> None:
    thread, template = _serve_in_thread(launcher_pid=_a_pid_that_has_exited())
    thread.join(timeout=30)
    assert not thread.is_alive(), "the template kept serving after its launcher had gone"
    assert template.listener is not None
    template.listener.close()


def test_a_template_whose_launcher_is_running_keeps_serving() -> None:
    thread, template = _serve_in_thread(launcher_pid=os.getppid())  # this process's parent is alive
    thread.join(timeout=3)
    assert thread.is_alive(), "the template stopped although its launcher is running"
    os.unlink(template.socket_path)  # taken away: the loop ends on its next turn
    thread.join(timeout=30)
    assert not thread.is_alive()
