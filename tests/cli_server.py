"""A ``biolake`` for shell examples: one warm interpreter forks a real process per command.

``tests/test_examples.py`` runs every example with bash, as a reader's shell runs it. Each
``biolake`` it starts was a fresh interpreter that spent about 2 s importing numpy, pyarrow,
polars, deltalake, duckdb and dask before the command's own work, and the examples start over a
hundred. Here the examples' PATH leads to a stub, ``biolake`` (``python -S``: the standard library
only, started in milliseconds), which hands its arguments, working directory, environment and
standard streams to this server over a Unix socket. The server imported the CLI's modules once
(``cli_process.PRELOAD``); per command it forks a child that forks the command: a process of its
own with the stub's stdin, stdout and stderr and the stub's environment (dask's configuration
re-read from it), which ends as a fresh one would (its exit message or traceback, atexit handlers, flushed streams). The child
sends the command's exit status back and the stub exits with it.

Run as ``python tests/cli_server.py SOCKET`` (``serve`` below); ``write_stub`` writes the stub.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

from cli_process import PRELOAD, enter_command

_STATUS_BYTES = 4

STUB = '''#!{python} -S
"""biolake, run by the warm server at {address} (tests/cli_server.py)."""
import json, os, socket, sys
server = socket.socket(socket.AF_UNIX)
server.connect({address!r})
socket.send_fds(server, [b"!"], [0, 1, 2])
request = json.dumps([sys.argv[1:], os.getcwd(), dict(os.environ)]).encode()
server.sendall(len(request).to_bytes(8, "big") + request)
status = b""
while len(status) < {size} and (chunk := server.recv({size} - len(status))):
    status += chunk
sys.exit(int.from_bytes(status, "big", signed=True) if len(status) == {size} else 1)
'''


def write_stub(folder: Path, address: str) -> Path:
    """An executable ``folder/biolake`` that runs its command on the server listening at ``address``."""
    stub = folder / "biolake"
    stub.write_text(STUB.format(python=sys.executable, address=address, size=_STATUS_BYTES))
    stub.chmod(0o755)
    return stub


def _receive(connection: socket.socket) -> tuple[list[str], str, dict[str, str], list[int]]:
    """The stub's standard streams, then its arguments, working directory and environment."""
    _, streams, _, _ = socket.recv_fds(connection, 1, 3)
    size = int.from_bytes(_exactly(connection, 8), "big")
    args, cwd, env = json.loads(_exactly(connection, size))
    return args, cwd, env, streams


def _exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError("the stub hung up")
        data += chunk
    return data


def _command(args: list[str], cwd: str, env: dict[str, str], streams: list[int]) -> int:
    """The forked command: the stub's streams, directory and environment, then ``biolake ARGS`` run to its
    end as the console script runs it (:func:`biolake.cli.exit_status`); its exit status."""
    enter_command(env, dict(enumerate(streams)), cwd)
    sys.argv = ["biolake", *args]
    from biolake.cli import exit_status
    return exit_status(args)


def _answer(connection: socket.socket) -> None:
    """One stub's command, run in a child of this process; its exit status goes back to the stub."""
    args, cwd, env, streams = _receive(connection)
    child = os.fork()
    if child == 0:
        connection.close()
        os._exit(_command(args, cwd, env, streams))
    for descriptor in streams:
        os.close(descriptor)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    connection.sendall((128 - code if code < 0 else code).to_bytes(_STATUS_BYTES, "big", signed=True))


def serve(address: str) -> None:
    """Import the CLI's modules once, then fork a handler per connection at ``address``, forever."""
    for module in PRELOAD:
        importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(f"{address}.binding")
    listener.listen(64)
    os.rename(f"{address}.binding", address)   # the address appears only once it takes connections
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # handlers are reaped as they end
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # the handler waits for its command
            try:
                _answer(connection)
            finally:
                os._exit(0)
        connection.close()


if __name__ == "__main__":
    del sys.path[0]   # this script's folder: as for a fresh ``biolake``, the test modules are not importable
    serve(sys.argv[1])
