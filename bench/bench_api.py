"""REST API benchmark: prints a table and writes bench/results/api.json.

Starts a real `watchkeeper serve` (SQLite, no job workers, rate limits out of
the way) and drives it from this process with concurrent HTTP clients:

- GET /health, anonymous;
- POST /analyze/image/path on an image already analysed (a pipeline cache
  hit; each request still authenticates, stores the analysis and audits it);
- job submission: POST /analyze/image/path with "async": true.

The load generator shares the machine's cores with the server, so on a
small machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))
from apiserver import ApiServer  # noqa: E402 - the tests' real-server helper

from watchkeeper.samples import still_room  # noqa: E402


def _request_bytes(method: str, path: str, port: int, headers: dict[str, str], body: dict[str, Any] | None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _connection(port: int, request: bytes, stop_at: float, latencies: list[float], statuses: list[int]) -> None:
    """One keep-alive connection sending ``request`` back to back (a bare HTTP/1.1 client: httpx's own
    overhead would make the load generator, not the server, the bottleneck at 50 connections)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses.append(status)
    finally:
        writer.close()


async def _load(port: int, method: str, path: str, *, clients: int, duration_s: float,
                headers: dict[str, str], body: dict[str, Any] | None) -> dict[str, float]:
    """``clients`` connections each sending requests back to back for ``duration_s``."""
    request = _request_bytes(method, path, port, headers, body)
    latencies: list[float] = []
    statuses: list[int] = []
    began = time.perf_counter()
    await asyncio.gather(*(_connection(port, request, began + duration_s, latencies, statuses)
                           for _ in range(clients)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": sum(status >= 400 for status in statuses),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="Duration of each load phase.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "api.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wk-bench-api-") as tmp:
        root = Path(tmp)
        settings = {"server": {"job_workers": 0, "rate_limit_per_minute": 10_000_000, "rate_limit_burst": 1_000_000}}
        server = ApiServer(root, settings)
        key = server.bootstrap_admin()
        server.start()
        try:
            image = root / "room.jpg"
            Image.fromarray(still_room(320, 240)).save(image, quality=90)
            headers = {"X-API-Key": key}
            with server.client(key) as client, image.open("rb") as handle:
                path = client.post("/upload", files={"file": ("room.jpg", handle)}).json()["file_path"]
                client.post("/analyze/image/path", json={"image_path": path})  # loads the models, fills the cache
                assert client.post("/analyze/image/path", json={"image_path": path}).json()["cache_hit"] is True

            phases = {
                "health": ("GET", "/health", {}, None),
                "analyze_cached": ("POST", "/analyze/image/path", headers, {"image_path": path}),
                "job_submit": ("POST", "/analyze/image/path", headers, {"image_path": path, "async": True}),
            }
            figures = {
                name: asyncio.run(_load(server.port, method, url_path, clients=args.clients, duration_s=args.seconds,
                                        headers=phase_headers, body=body))
                for name, (method, url_path, phase_headers, body) in phases.items()
            }
        finally:
            server.stop()

    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    print(f"{args.clients} concurrent clients, {args.seconds:g} s per phase, server and clients on one machine "
          f"({machine['cpus']} CPUs)")
    print(f"{'phase':16} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'requests':>9} {'failed':>7}")
    for name, row in figures.items():
        print(f"{name:16} {row['requests_per_s']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['requests']:>9} "
              f"{row['failures']:>7}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "clients": args.clients, "seconds_per_phase": args.seconds,
                                    "figures": figures}, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
