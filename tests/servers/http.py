"""Any ASGI app served by a real uvicorn on 127.0.0.1, in a thread of its own."""

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

# One TLS context for every test client: httpx otherwise builds a new one for each client,
# re-reading the CA bundle (~50 ms), which would be most of a test's time.
CLIENT_TLS = ssl.create_default_context()


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, date_header: bool = True, port: int = 0, tls_pem: str | None = None
) -> Iterator[str]:
    """Serves `app` until the block ends; yields its base URL. `date_header=False` leaves the
    Date header to the app (uvicorn's own is refreshed once a second, and sent beside any the
    app sets). `port` 0: any free one. `tls_pem`: a file with the key and certificate chain
    (trustme's), to serve https."""
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="asyncio",
            date_header=date_header,
            ssl_certfile=tls_pem,
            ssl_keyfile=tls_pem,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    while not server.started and thread.is_alive():
        started.wait(0.01)
    if not server.started:
        raise RuntimeError("the test server did not start")
    try:
        yield f"{'https' if tls_pem else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
