"""A TCP proxy in front of Postgres that can cut every connection: a server restart, locally.

Point an engine at ``proxy.url(database_url)``; bytes are relayed both ways untouched::

    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        engine = make_engine(proxy.url(url))
        ...
        proxy.drop_all()          # every open connection is cut, as by a restart
        with proxy.refusing():    # new connections are reset at once, as while it starts
            ...
        with proxy.silent():      # new connections are accepted and never answered
            ...

The real server is never touched: only the connections through the proxy.
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from tests.fakes.background_server import HttpBackgroundServer


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TcpProxy(HttpBackgroundServer):  # its serve_forever(0.05) notices stop() quickly
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1"):
        self.upstream = upstream
        self.accepted = 0
        self._addr = (host, 0)
        self._refusing = threading.Event()
        self._silent = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # both ends of every relayed connection

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("TcpProxy is not started")
        return self._server.server_address[1]

    def url(self, database_url: str) -> str:
        """The same database URL, through the proxy."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port) \
            .render_as_string(hide_password=False)

    def drop_all(self) -> int:
        """Cut every open connection, both ways; returns how many sockets were cut."""
        with self._lock:
            cut = list(self._open)
        for sock in cut:
            _shutdown(sock)  # the relay thread sees the end and closes both sockets
        return len(cut)

    @contextmanager
    def refusing(self) -> Iterator[None]:
        """While inside, every new connection is accepted and reset at once."""
        self._refusing.set()
        try:
            yield
        finally:
            self._refusing.clear()

    @contextmanager
    def silent(self) -> Iterator[None]:
        """While inside, new connections are accepted and get no answer: a lost server."""
        self._silent.set()
        try:
            yield
        finally:
            self._silent.clear()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def _make_server(self) -> _Server:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._relay(self.request)

        return _Server(self._addr, Handler)

    def _relay(self, client: socket.socket) -> None:
        if self._refusing.is_set():
            # linger 0: close() sends a reset, as a port nobody listens on would
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if self._silent.is_set():
            while self._silent.is_set():
                time.sleep(0.05)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            return
        server.settimeout(None)
        with self._lock:
            self.accepted += 1
            self._open |= {client, server}
        try:
            _pump(client, server)
        finally:
            with self._lock:
                self._open -= {client, server}
            server.close()


def _pump(client: socket.socket, server: socket.socket) -> None:
    """Relay bytes both ways until either side ends or fails."""
    peer = {client: server, server: client}
    with selectors.DefaultSelector() as selector:
        for sock in peer:
            selector.register(sock, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                try:
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    peer[key.fileobj].sendall(data)
                except OSError:
                    return


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
