"""The entry point of every sandbox process: a snippet child, or the fork server.

``launcher.python_argv`` starts ``python -I`` on this ``main``. The fork server imports ``child``
to serve each forked snippet, so the choice between the two lives here rather than in ``child``
(which would otherwise import the fork server that imports it).
"""

from __future__ import annotations

import json
import sys

from dp_resources.sandbox.child import serve
from dp_resources.sandbox.preload import preload


def main(argv: list[str]) -> None:
    """``--fork-server CONTROL_FD [MODULES_JSON]`` runs the fork server; ``SPEC_JSON`` runs one
    snippet (payload on fd 0, result on the fd the spec names)."""
    if argv and argv[0] == "--fork-server":
        from dp_resources.sandbox.forkserver import serve_forever

        serve_forever(int(argv[1]), json.loads(argv[2]) if len(argv) > 2 else [])
        return
    spec = json.loads(argv[0])
    preload()
    serve(spec, int(spec["result_fd"]))


if __name__ == "__main__":
    main(sys.argv[1:])
