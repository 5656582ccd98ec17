"""Drive the real bot as Slack would: a bot process, a moto server and signed requests.

Used by the end-to-end tests, `make demo` and `make bench`.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"


# Ports handed out lie below Linux's ephemeral range (32768 and up), where no connection
# takes its source port: a port that the kernel picked from that range was taken, between a
# bot's kill -9 and its restart on the same port, as some client connection's source port
# ("address already in use"). Each xdist worker draws from a block of its own.
PORT_BLOCK = 1500


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    low = 20000 + int(worker.removeprefix("gw") or 0) % 8 * PORT_BLOCK
    for port in random.sample(range(low, low + PORT_BLOCK), PORT_BLOCK):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or a closed connection's TIME_WAIT
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{low + PORT_BLOCK - 1}")


class MotoServer:
    """moto's AWS emulator over real HTTP, for boto3 with AWS_ENDPOINT_URL."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset",
                                                      method="POST")).read()

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1"}

    def iam(self):
        return self.client("iam")

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@dataclass
class Reply:
    status: int
    body: str
    seconds: float

    def json(self) -> dict:
        return json.loads(self.body) if self.body else {}


class SlackSender:
    """Sends what Slack sends: form posts signed with the app's signing secret."""

    def __init__(self, base_url: str, response_url_base: str,
                 signing_secret: str = SIGNING_SECRET):
        self.url = base_url.rstrip("/") + "/slack/events"
        self.response_url_base = response_url_base.rstrip("/")
        self.verifier = SignatureVerifier(signing_secret)

    def post(self, body: str, *, timestamp: int | None = None, signature: str | None = None,
             sign: bool = True, content_type="application/x-www-form-urlencoded") -> Reply:
        return self.send_prepared(self.prepare(body, timestamp=timestamp, signature=signature,
                                               sign=sign, content_type=content_type))

    def prepare(self, body: str, *, timestamp: int | None = None, signature: str | None = None,
                sign: bool = True, content_type="application/x-www-form-urlencoded") -> bytes:
        """The whole HTTP/1.1 request, signed unless told otherwise, ready for a socket."""
        timestamp = str(int(time.time()) if timestamp is None else timestamp)
        data, address = body.encode(), urlsplit(self.url)
        head = [f"POST {address.path} HTTP/1.1", f"Host: {address.netloc}",
                f"Content-Type: {content_type}", f"Content-Length: {len(data)}",
                "Connection: close"]
        if sign:
            head += [f"X-Slack-Request-Timestamp: {timestamp}", "X-Slack-Signature: " + (
                signature or self.verifier.generate_signature(timestamp=timestamp, body=body))]
        return "\r\n".join([*head, "", ""]).encode() + data

    def send_prepared(self, raw: bytes) -> Reply:
        """Connect, send, read to the end: the time from connecting to the last byte."""
        address = urlsplit(self.url)
        started = time.perf_counter()
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(raw)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return _reply(b"".join(chunks), time.perf_counter() - started)

    def command_body(self, user_id: str, text: str, key: str | None = None) -> str:
        key = key or uuid.uuid4().hex[:10]
        return urlencode({
            "token": "legacy", "team_id": "T0FAKE", "team_domain": "fake",
            "channel_id": "C0GENERAL", "channel_name": "general", "user_id": user_id,
            "user_name": user_id.lower(), "command": "/request-access", "text": text,
            "api_app_id": "A0ACCESSBOT", "is_enterprise_install": "false",
            "response_url": f"{self.response_url_base}/response/{key}",
            "trigger_id": f"trigger-{key}",
        })

    def command(self, user_id: str, text: str = "", key: str | None = None) -> Reply:
        return self.post(self.command_body(user_id, text, key))

    def click_body(self, user_id: str, action_id: str, value: str, *, channel: str = "C0APPROVALS",
                   message_ts: str = "1700000000.000100", key: str | None = None,
                   block_id: str = "decision", message_blocks: list[dict] | None = None
                   ) -> str:
        """Slack's block_actions body; `message_blocks`: the clicked message's blocks, which
        Slack sends along (several KB for an approval copy)."""
        key = key or uuid.uuid4().hex[:10]
        payload = {
            "type": "block_actions", "api_app_id": "A0ACCESSBOT", "token": "legacy",
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                     "team_id": "T0FAKE"},
            "team": {"id": "T0FAKE", "domain": "fake"},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": False},
            "channel": {"id": channel, "name": "approvals"},
            "message": {"type": "message", "ts": message_ts, "text": "",
                        "blocks": message_blocks or []},
            "trigger_id": f"trigger-{key}",
            "response_url": f"{self.response_url_base}/response/{key}",
            "actions": [{"action_id": action_id, "block_id": block_id, "type": "button",
                         "value": value, "text": {"type": "plain_text", "text": action_id},
                         "action_ts": f"{time.time():.6f}"}],
        }
        return urlencode({"payload": json.dumps(payload)})

    def click(self, user_id: str, action_id: str, value: str, **kwargs) -> Reply:
        return self.post(self.click_body(user_id, action_id, value, **kwargs))

    def submit_view(self, user_id: str, callback_id: str, values: dict,
                    private_metadata: str = "") -> Reply:
        payload = {
            "type": "view_submission", "api_app_id": "A0ACCESSBOT", "token": "legacy",
            "team": {"id": "T0FAKE", "domain": "fake"},
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                     "team_id": "T0FAKE"},
            "trigger_id": f"trigger-{uuid.uuid4().hex[:10]}",
            "view": {"id": "V0FORM", "team_id": "T0FAKE", "type": "modal",
                     "callback_id": callback_id, "private_metadata": private_metadata,
                     "state": {"values": values}, "hash": "1.abc"},
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))


def post_together(posts: list[tuple[SlackSender, str]]) -> list[Reply]:
    """Send every (sender, body) at the same moment; replies in order."""
    return send_together(prepare_all(posts))[1]


def prepare_all(posts: list[tuple[SlackSender, str]]) -> list[tuple[str, bytes]]:
    """(url, the whole signed request) for each (sender, body): send_together's input."""
    return [(sender.url, sender.prepare(body)) for sender, body in posts]


def send_together(prepared: list[tuple[str, bytes]]) -> tuple[float, list[Reply]]:
    """Send every prepared (url, request) at the same moment: when the first connection
    was opened (time.time()), and the replies in order.

    Each request is signed and encoded before the start, and one thread drives every
    socket (non-blocking, through a selector), so that the clock measures the bot's
    answer: not this process building requests, nor its own threads queueing for the
    interpreter lock after each reply arrived. (`make bench` runs it in a process of its
    own, away from the fake Slack's and the proxy's threads.)
    """
    selector = selectors.DefaultSelector()
    started, chunks, replies = {}, {}, [None] * len(prepared)
    began = time.time()
    for index, (url, raw) in enumerate(prepared):
        address = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        started[index] = time.perf_counter()
        sock.connect_ex((address.hostname, address.port))
        chunks[index] = []
        selector.register(sock, selectors.EVENT_WRITE, (index, memoryview(raw)))
    deadline = time.monotonic() + 10
    try:
        while selector.get_map():
            if time.monotonic() > deadline:
                raise TimeoutError("the bot did not answer every request in 10 s")
            for key, events in selector.select(timeout=1):
                sock, (index, unsent) = key.fileobj, key.data
                if events & selectors.EVENT_WRITE:
                    unsent = unsent[sock.send(unsent):]
                    selector.modify(sock, selectors.EVENT_WRITE if unsent else
                                    selectors.EVENT_READ, (index, unsent))
                elif chunk := sock.recv(65536):
                    chunks[index].append(chunk)
                else:  # the bot closed the connection: the answer is whole
                    seconds = time.perf_counter() - started[index]
                    selector.unregister(sock)
                    sock.close()
                    replies[index] = _reply(b"".join(chunks[index]), seconds)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return began, replies


def _reply(raw: bytes, seconds: float) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    return Reply(int(head.split(b" ", 2)[1]), body.decode(), seconds)


class BotProcess:
    """`python bot.py` as an operator would run it, with its log kept in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: tuple[str, ...] = ()):
        self.port = int(env.get("PORT") or free_port())
        self.env = {**os.environ, **env, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.env.pop("AWS_PROFILE", None)
        # each bot its own metrics directory, as each container has (importing bot.py here
        # set one for this test process; two bots sharing it would delete each other's)
        if "PROMETHEUS_MULTIPROC_DIR" not in env:
            self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = log_path
        self.args = args
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BotProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), *self.args],
                                        cwd=ROOT, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bot exited with {self.process.returncode}:\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.1)
        raise TimeoutError(f"bot did not become healthy in {timeout}s:\n{self.log()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def crash(self) -> None:
        """SIGKILL: no clean shutdown, as in a power cut or an OOM kill."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pid(self) -> int:
        """The worker process that `python bot.py` started (Linux: read from /proc)."""
        pid = self.process.pid
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            if "resource_tracker" not in Path(f"/proc/{child}/cmdline").read_text():
                return int(child)
        raise LookupError(f"bot process {pid} has no worker process")


def process_alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def run_bot_command(env: dict[str, str | None], *args: str,
                    timeout: float = 60) -> subprocess.CompletedProcess:
    """`python bot.py ARGS` to its end; a None in `env` removes that variable."""
    full_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, str(ROOT / "bot.py"), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
