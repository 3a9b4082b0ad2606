"""A run worker started cold by the warm run launcher, when no template is ready to fork one
(``dp_instance.warm_launcher``): ``python -m dp_instance.cold_worker``, the run request on stdin.

It executes the run as ``dagster api execute_run`` does (``warm_template.execute_run``), after
paying the imports and the code location's load itself. Unlike Dagster's default launcher,
whose code server answers a launch only once its new process has imported Dagster and opened
the instance (seconds, and past the code server's 60 s limit on a loaded machine: the run then
fails), the launcher that starts this process waits for nothing: the daemon's run-queue loop
goes on at once. The request comes on stdin, written once the launcher has tagged the run with
this process (so run monitoring can always find it); the instance reference is not in argv,
which every user can read.
"""

from __future__ import annotations

import json
import sys

from dp_instance.warm_template import execute_run


def main() -> int:
    request = json.loads(sys.stdin.read() or "null")
    if not isinstance(request, dict) or "run_id" not in request:
        return 3  # the launcher went away before sending the run: nothing was touched
    execute_run(request["run_id"], request["instance_ref"], bool(request.get("watch_cancel")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
