"""`make bench-slack`: what a Slack Web API call costs the bot's client, with a new
connection for each call (slack_sdk's WebClient) and with kept connections
(handlers/client.KeptAliveClient, what the bot uses).

The fake Slack answers from a process of its own over HTTPS (a throwaway self-signed
certificate, TLS as slack.com speaks it) and over plain HTTP, at once (no latency), so
the figures are the client's own: its CPU per call, and the wall time per call on this
machine, where the network's round trip is ~0. The clients are built as the bot builds
them, with no `ssl` context of their own: they trust the system's certificates, with
the throwaway one added (SSL_CERT_FILE), so that loading the trust store costs what it
costs in production (urllib loads it again for every connection). Against slack.com
each new connection also costs a TCP and a TLS round trip before the request's own:
three round trips a call instead of one. Calls are sequential, from one thread, as
each of the sender's threads makes them; the two clients take turns, --rounds times.
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo root: scripts, tests.fakes
# ruff: noqa: E402 - the imports below need that path

from slack_sdk import WebClient

from accessbot.handlers.client import KeptAliveClient
from scripts.tables import machine, table
from tests.fakes.slack_api import FakeSlack
from tests.fakes.tls import TlsFakeSlack, self_signed, trust_store

SPAWN = multiprocessing.get_context("spawn")


def serve(cert: str, key: str, urls, stop) -> None:
    """The child process: both fakes, their API URLs onto `urls`, until `stop` is set."""
    with TlsFakeSlack(Path(cert), Path(key)) as tls, FakeSlack() as plain:
        urls.put((tls.api_url, plain.api_url))
        stop.wait()


def per_call(client: WebClient, calls: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per chat.postMessage, over `calls` in a row."""
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(calls):
        client.chat_postMessage(channel="C0BENCH", text=f"message {n}")
    return ((time.perf_counter() - wall) * 1000 / calls,
            (time.process_time() - cpu) * 1000 / calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=5, help="turns of each client")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(Path(tmp))
        urls, stop = SPAWN.Queue(), SPAWN.Event()
        server = SPAWN.Process(target=serve, args=(str(cert), str(key), urls, stop), daemon=True)
        server.start()
        try:
            tls_url, plain_url = urls.get(timeout=60)
            bundle = trust_store(Path(tmp), cert)
            os.environ["SSL_CERT_FILE"] = str(bundle)  # as the bot would trust slack.com
            trusted = bundle.read_bytes().count(b"BEGIN CERTIFICATE")
            clients = {}
            for transport, url in (("HTTPS", tls_url), ("HTTP", plain_url)):
                for label, kind in (("new connection per call (WebClient)", WebClient),
                                    ("kept connection (KeptAliveClient)", KeptAliveClient)):
                    client = kind(token="xoxb-bench", base_url=url, timeout=10,
                                  retry_handlers=[])
                    client.chat_postMessage(channel="C0BENCH", text="warm-up")
                    clients[f"{transport}, {label}"] = client
            samples = {name: [] for name in clients}
            for _ in range(args.rounds):
                for name, client in clients.items():
                    samples[name].append(per_call(client, args.calls))
            opened = {name: getattr(c, "connections_opened", None) for name, c in clients.items()}
        finally:
            stop.set()
            server.join(10)
    rows = [[name, f"{statistics.median(w for w, _ in s):.2f}",
             f"{statistics.median(c for _, c in s):.2f}",
             "one per call" if opened[name] is None else str(opened[name])]
            for name, s in samples.items()]
    table(f"chat.postMessage, {args.calls} calls in a row x {args.rounds} rounds, the fake "
          f"Slack in another process, {trusted} certificates trusted (median of the rounds, "
          "ms per call)",
          ["", "wall", "client CPU", "connections"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
