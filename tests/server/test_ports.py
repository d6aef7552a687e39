"""The supervisor's port reservations: one concrete port for every worker, never a port in use."""

from __future__ import annotations

import socket
import sys

import pytest

from gateway.server.connections import ListenError
from gateway.server.ports import PortReservation

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's")


def _listener(port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_port_zero_becomes_one_port_the_workers_join_and_the_reservation_takes_no_connection() -> None:
    reservation = PortReservation("127.0.0.1:0")
    try:
        host, _, port = reservation.address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        worker = _listener(int(port), reuse_port=True)
        with worker, socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            worker.settimeout(5)
            accepted, _ = worker.accept()  # the only listening socket got it
            accepted.close()
        with pytest.raises(ConnectionRefusedError):  # bound, not listening: nothing answers
            socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        with socket.socket() as other, pytest.raises(OSError, match="in use"):  # nobody else takes it meanwhile
            other.bind(("127.0.0.1", int(port)))
    finally:
        reservation.close()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_refused_even_by_a_reuseport_listener(reuse_port: bool) -> None:
    with _listener(0, reuse_port) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as failure:
            PortReservation(f"127.0.0.1:{port}")
    assert str(failure.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"
