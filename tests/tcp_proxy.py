"""`TcpProxy`: a loopback TCP forwarder to simulate a database outage without touching the real server.

Plain sockets and threads, so it keeps forwarding whatever the test's event loop is doing, works for server
subprocesses too, and closes every socket it opened (pytest runs with warnings as errors). Three states:

- `up()`: listen on the fixed port and forward every connection to the target;
- `down()`: close the listening socket (new connections are refused) and reset every open connection;
- `hang()`: keep accepting but forward nothing, in either direction (a black-holed network); `up()` ends it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

__all__ = ["TcpProxy", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), waking any thread blocked on it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`. Use as a context manager or `start()`/`stop()`."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.accepted = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._hanging = threading.Event()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen and forward."""
        self.up()

    def stop(self) -> None:
        """Close every socket and wait for the threads."""
        self.down()
        for thread in self._threads:
            thread.join(timeout=5)

    def up(self) -> None:
        """Listen (again) and forward; ends a `hang()`."""
        self._hanging.clear()
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        self._spawn(self._accept_loop, listener)

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _reset(listener)
        for sock in sockets:
            _reset(sock)

    def hang(self) -> None:
        """Stop forwarding bytes; connections stay open and new ones are accepted."""
        self._hanging.set()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(self.target, timeout=3)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._sockets.update((client, upstream))
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self._hanging.is_set() and source in self._sockets:
                    time.sleep(0.02)
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            owned = source in self._sockets
            self._sockets.discard(source)
            self._sockets.discard(sink)
        if owned:
            _reset(source)
            _reset(sink)
