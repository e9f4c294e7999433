"""A private rabbitmq-server node leaves no process behind: its Erlang port mapper (``epmd``,
started detached by the node's ``erl``) runs on the node's own port and ends with the node."""

from __future__ import annotations

import socket

import pytest

from .harness import scale


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_stopping_a_node_stops_its_epmd(tmp_path):
    from dingskill.runtime.broker.node import RabbitNode

    try:
        node = RabbitNode(tmp_path / "node")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    node.start()
    try:
        node.wait_ready(90 * scale())
        assert _listening(node.epmd_port), f"no epmd on the node's port:\n{node.output()}"
    finally:
        node.stop()
    assert not _listening(node.epmd_port), "the node's epmd outlived it"
