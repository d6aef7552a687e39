"""The ports of a gateway served by several worker processes.

Each worker opens its own listening socket with SO_REUSEPORT on the same port, and
the kernel spreads new connections over them (nginx's ``reuseport`` and Envoy do the
same; gRPC can only listen this way, as grpcio cannot adopt a socket it did not
open). The supervisor first *reserves* each port: a socket bound with SO_REUSEPORT
but never listening, so it receives no connection. It turns ``:0`` into one
concrete port every worker then binds, and keeps the port this user's while a
worker restarts (Linux lets only sockets of the same user join a SO_REUSEPORT
group).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from gateway.server.connections import ListenError, bind_failure


@dataclass(frozen=True, slots=True)
class WorkerBinding:
    """Where one worker of several listens: the ports its supervisor reserved, joined
    with SO_REUSEPORT, and the private admin socket the supervisor reads it through."""

    http: str | None  # host:port, None when the HTTP listener is off
    grpc: str | None
    admin_socket: str


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PortReservation:
    """A bound, non-listening SO_REUSEPORT socket holding ``address``'s port for the workers."""

    def __init__(self, address: str) -> None:
        host, port = split_address(address)
        # A port already taken by anything (even another gateway with SO_REUSEPORT) fails here,
        # in one clear line, rather than silently sharing its connections.
        failure = bind_failure(host, port) if port else None
        if failure is not None:
            raise ListenError(address, failure)
        try:
            family, kind, proto, _, sockaddr = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
        except socket.gaierror as exc:
            raise ListenError(address, str(exc.strerror or exc).lower()) from None
        self.socket = socket.socket(family, kind, proto)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.socket.bind(sockaddr)
        except OSError as exc:
            self.socket.close()
            raise ListenError.from_os_error(address, exc) from None
        bound_host, bound_port = self.socket.getsockname()[:2]
        self.address = join_address(host or bound_host, bound_port)

    def close(self) -> None:
        self.socket.close()
