"""A small local fake of the Slack Web API.

Point ``slack_sdk.WebClient(base_url=fake.api_url)`` at it: every call arrives as
``POST /api/<method>`` (form or JSON body) and is recorded as a :class:`Call`.
Messages are kept per channel so tests can read the conversation as a person would::

    with FakeSlack(users={"U0BOB": {"email": "bob@example.com"}}) as slack:
        ...  # run the bot with SLACK_API_URL=slack.api_url
        msg = slack.wait_for(lambda: slack.dm("U0BOB"))[-1]
        print(render_text(msg))
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fakes.background_server import HttpBackgroundServer

T = TypeVar("T")

JSON_FIELDS = ("blocks", "view", "attachments", "metadata")
AUTH = {"url": "https://fake.slack.com/", "team": "Fake", "user": "accessbot",
        "team_id": "T0FAKE", "user_id": "U0BOT", "bot_id": "B0BOT"}


def _manifest() -> dict:
    return yaml.safe_load((Path(__file__).parents[2] / "slack-manifest.yml").read_text())


def manifest_scopes() -> list[str]:
    """The bot scopes slack-manifest.yml asks for: what an app installed from it holds."""
    return list(_manifest()["oauth_config"]["scopes"]["bot"])


def manifest_home_tab() -> bool:
    """Whether an app installed from slack-manifest.yml has its Home tab enabled."""
    return bool((_manifest()["features"].get("app_home") or {}).get("home_tab_enabled"))


@dataclass
class Call:
    method: str
    args: dict
    at: float
    token: str | None = field(default=None, compare=False)


def dm_channel(user_id: str) -> str:
    """The fake's stable DM channel id for a user: U0BOB -> D0BOB."""
    return "D" + user_id[1:]


def _channel_id(channel: str) -> str:
    return dm_channel(channel) if channel[:1] in ("U", "W") else channel


# How long a test waits for something the bot owes. It returns as soon as it is there; on
# a busy machine (three xdist workers on two cores, each test with its bot, moto and fakes)
# a message has taken over 10 s.
WAIT = 30.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmarks open many connections at once


class FakeSlack(HttpBackgroundServer):
    def __init__(self, users: dict[str, dict] | None = None, latency: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0, socket_mode_url: str | None = None):
        self.latency = latency
        self.socket_mode_url = socket_mode_url  # what apps.connections.open answers
        self._addr = (host, port)
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._channels: dict[str, list[dict]] = {}
        self._failures: dict[str, list] = {}  # method -> [error, remaining]
        self._response_targets: dict[str, tuple[str, str]] = {}
        self._users: dict[str, dict] = {}
        self._uploads: dict[str, bytes | None] = {}  # file id -> its bytes, once uploaded
        self._homes: dict[str, dict] = {}  # user id -> the App Home view last published
        self.scopes = manifest_scopes()  # auth.test's X-OAuth-Scopes header
        self.home_tab = manifest_home_tab()  # views.publish of a home view: not_enabled
        self.missing_channels: set[str] = set()     # conversations.info: channel_not_found
        self.channels_without_bot: set[str] = set()  # conversations.info: is_member false
        self.usergroups: dict[str, list[str]] = {}  # usergroups.users.list: id -> members
        self._seq = 0
        self.chaos = 0.0  # the share of calls answered 429, 500 or 503 (see make_chaotic)
        self.hangs = 0.0  # the share of calls that hang past the client's timeout
        self.hang_seconds = 11.0
        self.injected: dict[str, int] = {}
        self._random = random.Random(0)
        for uid, info in (users or {}).items():
            self.add_user(uid, **info)

    # -- lifecycle ---------------------------------------------------------
    def _make_server(self) -> _Server:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as slack.com keeps them
            disable_nagle_algorithm = True  # as in latency_proxy.py: no 40 ms stall

            def do_POST(self):
                fake._handle(self)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        return _Server(self._addr, Handler)

    @property
    def url(self) -> str:
        assert self._server, "FakeSlack is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    # -- configuration -----------------------------------------------------
    def add_user(self, user_id: str, email: str | None = None, name: str | None = None,
                 deleted: bool = False) -> None:
        name = name or user_id.lower()
        with self._lock:
            self._users[user_id] = {
                "id": user_id, "name": name, "real_name": name, "deleted": deleted,
                "profile": {"email": email, "real_name": name, "display_name": name},
            }

    def set_usergroup(self, group_id: str, members: list[str]) -> None:
        """A Slack user group (S...) and its members, as usergroups.users.list answers."""
        with self._lock:
            self.usergroups[group_id] = list(members)

    def fail(self, method: str, error: str = "ratelimited", times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer ``ok: false``."""
        with self._lock:
            self._failures[method] = [error, times]

    def response_url(self, key: str, channel: str | None = None, ts: str | None = None) -> str:
        """A response_url; if bound to a message, replace/delete_original act on it."""
        if channel and ts:
            with self._lock:
                self._response_targets[key] = (_channel_id(channel), ts)
        return f"{self.url}/response/{key}"

    # -- inspection --------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._channels.clear()
            self._failures.clear()
            self._response_targets.clear()
            self._homes.clear()

    def messages(self, channel: str) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._channels.get(_channel_id(channel), []))

    def dm(self, user_id: str) -> list[dict]:
        return self.messages(dm_channel(user_id))

    def seed_message(self, channel: str, text: str, blocks: list[dict]) -> str:
        """A message as if the bot had posted it earlier (no call recorded): its ts."""
        with self._lock:
            return self._api_chat_postMessage({"channel": channel, "text": text,
                                               "blocks": blocks})["ts"]

    def home(self, user_id: str) -> dict | None:
        """The App Home view last published for the user (views.publish), if any."""
        with self._lock:
            return copy.deepcopy(self._homes.get(user_id))

    def wait_for(self, predicate: Callable[[], T], timeout: float = WAIT,
                 interval: float = 0.02) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                recent = ", ".join(c.method for c in self.calls()[-15:]) or "none"
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise TimeoutError(f"{name} still falsy after {timeout}s "
                                   f"(last value {result!r}); recent Slack calls: {recent}")
            time.sleep(interval)

    # -- HTTP --------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        if parts.path.startswith("/upload/"):  # files.getUploadURLExternal's upload_url
            length = int(req.headers.get("Content-Length") or 0)
            with self._lock:
                self._uploads[parts.path[len("/upload/"):]] = req.rfile.read(length)
            return _reply(req, 200, {"ok": True})
        args = _parse_args(req, parts.query)
        auth = req.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else args.get("token")
        if parts.path.startswith("/api/"):
            method = parts.path[len("/api/"):]
        elif parts.path.startswith("/response/"):
            method = "response_url"
            args["key"] = parts.path[len("/response/"):]
        else:
            return _reply(req, 404, {"ok": False, "error": "unknown_path"})
        if self.latency:
            time.sleep(self.latency)
        injected = self._inject(method)
        if injected == "hang":
            time.sleep(self.hang_seconds)  # the client has given up; this answer is lost
            req.close_connection = True
        elif injected is not None:
            status, body = injected
            return _reply(req, status, body, {"Retry-After": "1"} if status == 429 else {})
        status, headers = 200, {}
        with self._lock:
            self._calls.append(Call(method, args, time.time(), token))
            failure = self._failures.get(method)
            if failure:
                failure[1] -= 1
                if failure[1] <= 0:
                    del self._failures[method]
                body = {"ok": False, "error": failure[0]}
                if failure[0] == "ratelimited":
                    status, headers = 429, {"Retry-After": "1"}
            else:
                if method == "auth.test":
                    headers["x-oauth-scopes"] = ",".join(self.scopes)
                handler = getattr(self, "_api_" + method.replace(".", "_"), None)
                try:
                    body = {"ok": True, **(handler(args) if handler else {})}
                except Exception as exc:  # noqa: BLE001 - a bug in the fake: fail loudly
                    status, body = 500, {"ok": False, "error": f"fake_crashed: {exc!r}"}
        _reply(req, status, body, headers)

    def make_chaotic(self, share: float, hangs: float = 0.0, seed: int = 0) -> None:
        """From now on answer `share` of Web API calls 429 (Retry-After 1), 500 or 503, and
        let `hangs` of them hang; auth.test and views.open are spared (start-up, 3 s
        trigger ids). The call is not carried out: Slack refused it."""
        with self._lock:
            self.chaos, self.hangs, self._random = share, hangs, random.Random(seed)

    def _inject(self, method: str):
        if method in ("auth.test", "views.open") or not (self.chaos or self.hangs):
            return None
        with self._lock:
            roll = self._random.random()
            if roll < self.hangs:
                fault = "hang"
            elif roll < self.hangs + self.chaos:
                fault = self._random.choice(["429", "500", "503"])
            else:
                return None
            self.injected[fault] = self.injected.get(fault, 0) + 1
        if fault == "hang":
            return fault
        status = int(fault)
        return status, {"ok": False, "error": "ratelimited" if status == 429 else
                        "internal_error" if status == 500 else "service_unavailable"}

    def _next_ts(self) -> str:
        self._seq += 1
        micros = 1_700_000_000_000_000 + 100 * self._seq
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _find(self, channel: str, ts: str) -> dict | None:
        return next((m for m in self._channels.get(channel, []) if m["ts"] == ts), None)

    # -- API methods (called with the lock held; return the body minus "ok") --
    def _api_auth_test(self, args: dict) -> dict:
        return dict(AUTH)

    def _api_apps_connections_open(self, args: dict) -> dict:
        if not self.socket_mode_url:
            return {"ok": False, "error": "fake_socket_mode_url_not_set"}
        return {"url": self.socket_mode_url}

    def _api_chat_postMessage(self, args: dict) -> dict:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        channel = _channel_id(args["channel"])
        msg = {"type": "message", "user": AUTH["user_id"], "bot_id": AUTH["bot_id"],
               "ts": self._next_ts(), "text": args.get("text", ""),
               "blocks": args.get("blocks") or []}
        for key in ("thread_ts", "attachments", "metadata"):
            if key in args:
                msg[key] = args[key]
        self._channels.setdefault(channel, []).append(msg)
        return {"channel": channel, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _api_chat_update(self, args: dict) -> dict:
        channel = _channel_id(args.get("channel", ""))
        msg = self._find(channel, args.get("ts"))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        # Like Slack: fields that are not sent (e.g. blocks) keep their previous value.
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                msg[key] = args[key]
        msg["edited"] = {"user": AUTH["user_id"], "ts": self._next_ts()}
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"],
                "message": copy.deepcopy(msg)}

    def _api_chat_postEphemeral(self, args: dict) -> dict:
        return {"message_ts": self._next_ts()}

    def _api_conversations_open(self, args: dict) -> dict:
        users = [u for u in str(args.get("users", "")).split(",") if u]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        cid = dm_channel(users[0]) if len(users) == 1 else "G" + "".join(u[1:] for u in users)
        return {"channel": {"id": cid}}

    def _api_files_getUploadURLExternal(self, args: dict) -> dict:
        self._seq += 1
        file_id = f"F{self._seq:08d}"
        self._uploads[file_id] = None
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, args: dict) -> dict:
        files = json.loads(args["files"]) if isinstance(args.get("files"), str) else args["files"]
        shared = []
        for file in files:
            content = self._uploads.get(file["id"])
            if content is None:
                return {"ok": False, "error": "file_not_found"}
            shared.append({"id": file["id"], "title": file.get("title"),
                           "content": content.decode("utf-8", "replace")})
        channel = _channel_id(args.get("channel_id", ""))
        if channel:  # shared: a message with the comment and the files
            msg = {"type": "message", "user": AUTH["user_id"], "ts": self._next_ts(),
                   "text": args.get("initial_comment", ""), "files": shared}
            if args.get("thread_ts"):
                msg["thread_ts"] = args["thread_ts"]
            self._channels.setdefault(channel, []).append(msg)
        return {"files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    def _api_conversations_info(self, args: dict) -> dict:
        channel = args.get("channel", "")
        if channel[:1] not in ("C", "G") or channel in self.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"channel": {"id": channel, "name": channel.lower(), "is_archived": False,
                            "is_member": channel not in self.channels_without_bot}}

    def _api_views_open(self, args: dict) -> dict:
        view = args.get("view") or {}
        view_id = args.get("view_id") or f"V{self._seq + 1:08d}"
        self._seq += 1
        return {"view": {**view, "id": view_id}}

    _api_views_update = _api_views_push = _api_views_open

    def _api_views_publish(self, args: dict) -> dict:
        """Slack's views.publish: a view of type home for user_id, kept per user."""
        view, user_id = args.get("view"), args.get("user_id", "")
        if not isinstance(view, dict) or view.get("type") != "home" or not user_id:
            return {"ok": False, "error": "invalid_arguments"}
        if user_id not in self._users:  # Slack: invalid_arguments, "invalid `user_id`"
            return {"ok": False, "error": "invalid_arguments"}
        if not self.home_tab:
            return {"ok": False, "error": "not_enabled"}
        self._seq += 1
        published = {**view, "id": f"V{self._seq:08d}", "team_id": "T0FAKE",
                     "hash": f"{self._seq}.fake"}
        self._homes[user_id] = published
        return {"view": copy.deepcopy(published)}

    def _api_usergroups_users_list(self, args: dict) -> dict:
        members = self.usergroups.get(args.get("usergroup", ""))
        if members is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"users": list(members)}

    def _api_users_info(self, args: dict) -> dict:
        user = self._users.get(args.get("user", ""))
        return {"user": copy.deepcopy(user)} if user else {"ok": False, "error": "user_not_found"}

    def _api_users_lookupByEmail(self, args: dict) -> dict:
        email = (args.get("email") or "").lower()
        for user in self._users.values():
            if (user["profile"]["email"] or "").lower() == email:
                return {"user": copy.deepcopy(user)}
        return {"ok": False, "error": "users_not_found"}

    def _api_response_url(self, args: dict) -> dict:
        target = self._response_targets.get(args["key"])
        msg = self._find(*target) if target else None
        if msg is not None and args.get("delete_original"):
            self._channels[target[0]].remove(msg)
        elif msg is not None and args.get("replace_original"):
            msg["text"] = args.get("text", "")
            msg["blocks"] = args.get("blocks") or []
        return {}


def _parse_args(req: BaseHTTPRequestHandler, query: str) -> dict:
    length = int(req.headers.get("Content-Length") or 0)
    raw = req.rfile.read(length).decode("utf-8") if length else ""
    ctype = req.headers.get("Content-Type", "")
    args: dict[str, Any] = {}
    for source in (query, "" if "json" in ctype else raw):
        for key, values in parse_qs(source, keep_blank_values=True).items():
            args[key] = values[0] if len(values) == 1 else values
    if "json" in ctype and raw:
        args.update(json.loads(raw))
    for key in JSON_FIELDS:
        if isinstance(args.get(key), str) and args[key][:1] in ("[", "{"):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args


def _reply(req: BaseHTTPRequestHandler, status: int, body: dict,
           headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode("utf-8")
    req.send_response(status)
    req.send_header("Content-Type", "application/json; charset=utf-8")
    req.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        req.send_header(name, value)
    req.end_headers()
    try:
        req.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the caller went away (a test killed the bot mid-call): nobody to answer


# -- rendering ---------------------------------------------------------------
_MENTION = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>")
_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<([^@#!>][^>|]*)(?:\|([^>]*))?>")


def _plain(text: Any) -> str:
    if isinstance(text, dict):
        text = text.get("text", "")
    text = _DATE.sub(lambda m: m[1], str(text or ""))  # <!date^...|fallback>
    text = _MENTION.sub(lambda m: m[1].replace("!", "@") + (m[3] or m[2]).lstrip("@#"), text)
    text = _LINK.sub(lambda m: m[2] or m[1], text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _element(el: dict) -> str:
    if el.get("type") == "button":
        return f"[{_plain(el.get('text'))}]"
    if el.get("type") == "image":
        return el.get("alt_text", "")
    if "placeholder" in el:
        return f"[{_plain(el['placeholder'])} v]"
    return _plain(el) if "text" in el else ""


def _block(block: dict) -> list[str]:
    kind = block.get("type")
    if kind in ("section", "header"):
        lines = [_plain(block.get("text"))] if block.get("text") else []
        lines += [_plain(f) for f in block.get("fields", [])]
        if block.get("accessory"):
            lines.append(_element(block["accessory"]))
        return lines
    if kind in ("context", "actions"):
        return [" ".join(filter(None, map(_element, block.get("elements", []))))]
    if kind == "divider":
        return ["---"]
    if kind == "input":
        return [f"{_plain(block.get('label'))}: {_element(block.get('element', {}))}"]
    return [_plain(block["text"])] if "text" in block else []


def render_text(message: dict) -> str:
    """Render a stored message (blocks, else text) as plain text a person would read."""
    blocks = list(message.get("blocks") or [])
    for att in message.get("attachments") or []:
        blocks += att.get("blocks") or ([{"type": "section", "text": att["text"]}]
                                        if att.get("text") else [])
    if not blocks:
        return _plain(message.get("text", ""))
    return "\n".join(line for b in blocks for line in _block(b) if line)
