"""Debian's ``prometheus`` on 127.0.0.1 and its ``promtool``, for the tests."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from alarmflow.services._process import (
    ManagedProcess,
    ServiceError,
    ensure_port_free,
    require_binary,
)

READY_TIMEOUT_S = 30.0
INSTALL_HINT = "run scripts/setup, which installs it with apt"


def promtool(*args: str) -> str:
    """Run ``promtool`` with ``args``; return its output, or raise with it on failure."""
    command = [require_binary("promtool", INSTALL_HINT), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"promtool {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class PrometheusServer:
    """A Prometheus on ``port`` running ``config_path``, its TSDB and log in ``run_dir``."""

    def __init__(self, port: int, config_path: Path, run_dir: Path) -> None:
        self.port = port
        self.config_path = Path(config_path)
        self.run_dir = Path(run_dir)
        self._process = ManagedProcess("prometheus", self.run_dir, "prometheus")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def answers(self) -> bool:
        """Whether ``/-/ready`` says the server is ready."""
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
            return response.status == 200

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start, or reuse the server this run directory already runs."""
        if not self._process.running():
            ensure_port_free(self.port, "prometheus")
            self._process.spawn(self._command())
        self._process.wait_ready(self.answers, timeout, f"/-/ready on {self.url}")

    def stop(self) -> None:
        self._process.stop()

    def api(self, path: str, **params: str) -> Any:
        """GET an HTTP API path; return its ``data``, or raise with Prometheus's error."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:1000]
            raise ServiceError(f"{url}: HTTP {exc.code}: {detail}") from exc
        if body.get("status") != "success":
            raise ServiceError(f"{url}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return self.api("/api/v1/query", query=promql)["result"]

    def _command(self) -> list[str]:
        return [
            require_binary("prometheus", INSTALL_HINT),
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.run_dir / 'tsdb'}",
            "--web.enable-lifecycle",
        ]
