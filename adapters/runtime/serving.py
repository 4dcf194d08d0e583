"""Serving an HTTP service with uvicorn, alone or as one of several replicas on one host.

With ``reuse_port`` the listening socket is bound with ``SO_REUSEPORT`` before uvicorn
starts: every replica binds the same address, and the kernel spreads new connections over
them (Linux hashes each connection's addresses), so a replica that dies takes only its own
connections along, and the others keep answering on the port. Without it, plain
``uvicorn.run``.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn


def serve(app: Any, *, host: str, port: int, reuse_port: bool = False, **options: Any) -> None:
    # log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
    if not reuse_port:
        uvicorn.run(app, host=host, port=port, log_config=None, **options)
        return
    listener = shared_listener(host, port)
    config = uvicorn.Config(app, log_config=None, **options)
    uvicorn.Server(config).run(sockets=[listener])


def shared_listener(host: str, port: int) -> socket.socket:
    """A TCP socket on ``host:port`` that other processes may bind too (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener
