"""The start/stop plumbing shared by the local fakes: a server in a daemon thread."""

from __future__ import annotations

import threading
from typing import Any, Self


class BackgroundServer:
    """Subclasses build the server in `_make_server`; this runs and stops it."""

    _server: Any = None
    _thread: threading.Thread | None = None

    def _make_server(self) -> Any:
        """A server with serve_forever() and shutdown() (socketserver or websockets)."""
        raise NotImplementedError

    def start(self) -> Self:
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        if hasattr(self._server, "server_close"):  # socketserver keeps its socket open
            self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class HttpBackgroundServer(BackgroundServer):
    def _serve(self) -> None:
        self._server.serve_forever(0.05)  # notice shutdown() within 50 ms
