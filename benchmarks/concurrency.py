#!/usr/bin/env python
"""The app under concurrent load: N `gradio_client` clients on loopback send real photos for a fixed time.

    python benchmarks/concurrency.py [--clients 20] [--seconds 60] [--rounds 1] [--server_env K=V ...] [--note "..."]

Starts app.py as a subprocess on a free loopback port, then N client threads each loop (bounded by the
duration) over the sample photos calling the Image tab's API (`/analyze_image`, a photo per request,
each client with its own detector / minimum face size so that leaking settings would show). Reports
requests completed, errors, throughput, latency p50 / p95 / max, that every response's face count is the
one its own settings give (checked against a sequential reference), and the server's resident memory
(RSS, from /proc) at start, after warm-up, at the end of each round (``--rounds``: the load is repeated, so
that growth that levels off can be told from growth that goes on) and its peak. ``--server_env`` sets
environment variables of the server process only (e.g. ``MALLOC_ARENA_MAX=2``). Writes
benchmarks/results/concurrency.md and .json with the command: one section per server environment, the newest
run of each (a run replaces its environment's section and keeps the others).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from common import DATA, REPO, command_line, result_path, rss_mb, update_keyed, write_text

PHOTOS = ("group.jpeg", "happy-baby.jpeg", "surprised.jpeg", "angry.jpg", "neutral.jpeg", "sad-baby.jpeg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(log_path: Path, server_env: dict | None = None):
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               **(server_env or {}))
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except Exception:
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(1)
    process.kill()
    raise RuntimeError("app.py did not start in 240 s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="Length of one round of load.")
    parser.add_argument("--rounds", type=int, default=1, help="Rounds of load, back to back (RSS after each).")
    parser.add_argument("--server_env", nargs="*", default=[], metavar="K=V",
                        help="Environment variables for the server process only.")
    parser.add_argument("--samples", default=str(DATA / "samples"))
    parser.add_argument("--settings", nargs="+", default=["mtcnn:20", "haar:60"],
                        help="detector:min_face_size pairs, given to the clients in turn.")
    parser.add_argument("--note", default="")
    parser.add_argument("--output", default=str(result_path("concurrency", ".json")),
                        help="Every server environment's newest run (this run replaces its environment's).")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    samples = Path(args.samples)
    photos = [samples / name for name in PHOTOS if (samples / name).is_file()]
    settings = [(s.split(":")[0], int(s.split(":")[1])) for s in args.settings]
    import tempfile

    log_path = Path(tempfile.mkdtemp(prefix="fer_hf_concurrency_")) / "server.log"
    server_env = dict(item.split("=", 1) for item in args.server_env)
    process, url = start_app(log_path, server_env)
    memory = {"start": rss_mb(process.pid, descendants=True)}
    peak = [memory["start"]]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak.append(rss_mb(process.pid, descendants=True))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        reference_client = Client(url, verbose=False)
        expected = {}
        for photo in photos:  # sequential reference (also the warm-up: models and detectors loaded)
            for detector, size in settings:
                summary = reference_client.predict(handle_file(str(photo)), "fer-vgg-fer2013", detector, size, False,
                                                   api_name="/analyze_image")[5]
                expected[(photo.name, detector, size)] = summary
        memory["after_warm_up"] = rss_mb(process.pid, descendants=True)
        latencies, errors, mismatches = [], [], []
        lock = threading.Lock()
        deadline = 0.0

        def client_loop(index: int):
            client = Client(url, verbose=False)
            detector, size = settings[index % len(settings)]
            k = index
            while time.time() < deadline:
                photo = photos[k % len(photos)]
                k += 1
                started = time.perf_counter()
                try:
                    summary = client.predict(handle_file(str(photo)), "fer-vgg-fer2013", detector, size, False,
                                             api_name="/analyze_image")[5]
                except Exception as error:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if summary != expected[(photo.name, detector, size)]:
                        mismatches.append((photo.name, detector, size, summary))

        started = time.time()
        rounds = []
        for _ in range(args.rounds):
            deadline = time.time() + args.seconds
            threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rounds.append(round(rss_mb(process.pid, descendants=True), 1))
        wall = time.time() - started
        memory["end"] = rss_mb(process.pid, descendants=True)
    finally:
        stop.set()
        watcher.join(timeout=2)
        process.terminate()
        process.wait(timeout=60)
    memory["peak"] = max(peak)
    latencies.sort()
    result = {
        "command": command_line("concurrency"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "note": args.note,
        "clients": args.clients, "seconds": args.seconds, "settings": args.settings,
        "requests": len(latencies), "errors": len(errors), "error_examples": errors[:5],
        "settings_mismatches": len(mismatches), "mismatch_examples": mismatches[:5],
        "wall_s": round(wall, 1), "requests_per_s": round(len(latencies) / wall, 3) if wall else 0.0,
        "latency_s": {"p50": round(statistics.median(latencies), 3) if latencies else None,
                      "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
                      "max": round(latencies[-1], 3) if latencies else None},
        "server_env": server_env, "rounds": args.rounds,
        "server_rss_mb": {k: round(v, 1) for k, v in memory.items()}, "server_rss_mb_after_each_round": rounds,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    runs = update_keyed(args.output, " ".join(args.server_env) or "default", result)
    markdown = Path(args.output).with_suffix(".md")
    write_text(markdown, "\n".join(["# The app under concurrent clients", ""]
                                   + [line for key, run in runs.items() for line in markdown_section(key, run)]))
    print(json.dumps(result, indent=1))


def markdown_section(key: str, result: dict) -> list[str]:
    memory, rounds = result["server_rss_mb"], result["server_rss_mb_after_each_round"]
    return [f"## Server environment: {key}", "", f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
            *([f"{result['server_env_note']}  "] if result.get("server_env_note") else []),
            f"Note: {result['note'] or '-'}  ", "",
            f"{result['clients']} `gradio_client` clients on loopback, each sending the sample photos in turn to "
            f"`/analyze_image` for {result['rounds']} x {result['seconds']:g} s (server environment: {key}), with detector settings {result['settings']} alternating between "
            "clients (each response is compared with the sequential answer for its own settings).", "",
            "| measure | value |", "| --- | --- |",
            f"| requests completed | {result['requests']} |", f"| errors | {result['errors']} |",
            f"| responses that are not their own settings' answer | {result['settings_mismatches']} |",
            f"| throughput | {result['requests_per_s']} requests/s |",
            f"| latency p50 / p95 / max | {result['latency_s']['p50']} / {result['latency_s']['p95']} / "
            f"{result['latency_s']['max']} s |",
            f"| server RSS at start / after warm-up / at end / peak | {memory['start']:.0f} / "
            f"{memory['after_warm_up']:.0f} / {memory['end']:.0f} / {memory['peak']:.0f} MB |",
            f"| server RSS after each round | {' / '.join(f'{v:.0f}' for v in rounds)} MB |",
            f"| load average at end | {result['load_average_at_end']} |", ""]


if __name__ == "__main__":
    main()
