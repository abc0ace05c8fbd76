"""Debian's ``prometheus`` on 127.0.0.1, and ``promtool`` checks, for the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from alarmflow.services._process import ManagedProcess, ServiceError

READY_TIMEOUT_S = 30.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} is not installed: run scripts/setup")
    return path


def promtool(*args: str) -> str:
    """Run ``promtool``; raise with its output when it reports a problem."""
    done = subprocess.run([_tool("promtool"), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"promtool {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class PrometheusServer:
    """A Prometheus with ``config_path``, its TSDB in ``run_dir``."""

    def __init__(self, port: int, config_path: Path, run_dir: Path) -> None:
        self.port = port
        self.config_path = Path(config_path)
        self._process = ManagedProcess("prometheus", Path(run_dir))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
            return response.status == 200

    def start(self) -> None:
        self._process.spawn(
            [
                _tool("prometheus"),
                f"--config.file={self.config_path}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self._process.run_dir / 'tsdb'}",
                "--web.enable-lifecycle",
            ]
        )
        self._process.wait_ready(self._ready, READY_TIMEOUT_S, f"/-/ready on {self.url}")

    def api(self, path: str, **params: str) -> Any:
        """GET an HTTP API path; return its ``data`` or raise with Prometheus's error."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise ServiceError(f"{url}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return self.api("/api/v1/query", query=promql)["result"]

    def stop(self) -> None:
        self._process.stop()
