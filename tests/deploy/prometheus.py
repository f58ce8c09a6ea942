"""A real Prometheus server for the tests (Debian's `prometheus` package): started on a free
loopback port with deploy/prometheus.yml made to scrape one target every second, deploy's rules
loaded, its storage in the test's temporary folder; asked through its HTTP API."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.deploy.catalog import EXAMPLE_CONFIG, RULES

PACKAGE = "prometheus"  # Debian's package: /usr/bin/prometheus and /usr/bin/promtool


def binary(name: str) -> str:
    """The path of `prometheus` or `promtool`. Missing: the test skips naming the package, but
    under CI=true (where .ci/run installs it) it fails."""
    path = shutil.which(name)
    if path is None:
        why = f"{name} not found: install Debian's `{PACKAGE}` package (apt-get install {PACKAGE})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; .ci/run installs it")
        pytest.skip(why)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _once(text: str, old: str, new: str) -> str:
    # deploy/prometheus.yml changed so that the test no longer adapts it: say so, not a
    # Prometheus scraping the wrong thing.
    assert text.count(old) == 1, f"deploy/prometheus.yml: expected {old!r} once"
    return text.replace(old, new)


def scrape_config(target: str) -> str:
    """deploy/prometheus.yml as it ships, with the target, 1 s scrapes and evaluations, and the
    rules file by its path in the repository."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    text = _once(text, "scrape_interval: 15s", "scrape_interval: 1s")
    text = _once(text, "evaluation_interval: 15s", "evaluation_interval: 1s")
    text = _once(text, "scrape_interval: 5s", "scrape_interval: 1s")
    text = _once(text, "scrape_timeout: 4s", "scrape_timeout: 1s")
    text = _once(text, 'targets: ["127.0.0.1:9464"]', f'targets: ["{target}"]')
    return _once(text, "- prometheus-rules.yml", f'- "{RULES}"')


class PromQLError(Exception):
    """Prometheus refused a query (a parse error, an unknown function): carries the query."""

    def __init__(self, query: str, error: str) -> None:
        super().__init__(f"{error}: {query}")
        self.query = query


class Prometheus:
    """One running server, asked through its HTTP API."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.client = httpx.AsyncClient(base_url=url, timeout=5.0)

    async def __aenter__(self) -> Prometheus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.client.get(path, params=params)
        body = r.json()
        if body.get("status") != "success":
            raise PromQLError(str(params), str(body.get("error")))
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as a one-element list) `expr` gives now."""
        try:
            data = await self.get("/api/v1/query", query=expr)
        except PromQLError as exc:
            raise PromQLError(expr, str(exc)) from None
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    async def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = await self.get(f"/api/v1/label/{label}/values", **{"match[]": match})
        return values

    async def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its `query`, `health` and `lastError`."""
        data = await self.get("/api/v1/rules")
        return [rule for group in data["groups"] for rule in group["rules"]]

    async def targets(self) -> list[dict[str, Any]]:
        data = await self.get("/api/v1/targets")
        active: list[dict[str, Any]] = data["activeTargets"]
        return active

    def log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


async def start(nursery: trio.Nursery, exe: str, tmp_path: Path, target: str) -> Prometheus:
    """Start Prometheus (the binary `exe`) scraping `target` (host:port); return once it
    answers as ready."""
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(target), encoding="utf-8")
    port = free_port()
    log = tmp_path / "prometheus.log"
    cmd = [
        exe,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with log.open("wb") as out:
        await nursery.start(
            functools.partial(trio.run_process, cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    with trio.move_on_after(15):
        while True:
            try:
                if (await server.client.get("/-/ready")).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            await trio.sleep(0.05)
    raise AssertionError(f"Prometheus not ready within 15 s:\n{server.log_tail()}")
