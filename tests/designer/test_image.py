"""The image builds the designer's client (a first stage, from the lock file) and carries only the
built files, where `dp designer --client` is told to find them. (Building the image needs a
Docker daemon; tests/deploy builds and runs it where one is available.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_builds_the_client_from_its_lock_and_keeps_only_dist():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    assert len(stages) == 2 and stages[0].split("\n", 1)[0].endswith(" AS client")
    client = stages[0]
    assert "COPY designer/package.json designer/package-lock.json ./" in client
    assert "RUN npm ci " in client and client.index("npm ci") < client.index("npm run build")
    final = stages[1]
    assert "COPY --from=client /client/dist ./designer/dist" in final
    assert "npm" not in final and "nodejs" not in final  # no Node in the image that runs
    # every file the client's build reads is copied into the stage
    copied = " ".join(re.findall(r"^COPY (.+)$", client, flags=re.MULTILINE))
    for name in ("index.html", "tsconfig.json", "vite.config.ts", "src"):
        assert f"designer/{name}" in copied, name
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {"designer/node_modules", "designer/dist"} <= ignored  # the host's never replace the stage's
    assert "/opt/dagster/app/designer/dist" in (ROOT / "dp_designer" / "cli.py").read_text(encoding="utf-8")
