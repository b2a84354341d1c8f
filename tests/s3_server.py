"""moto's S3 server, S3 only and quiet: ``python tests/s3_server.py PORT [REQUEST_LOG]``.

``python -m moto.server`` answers every AWS service: for each request it works out which one
from the host and headers (listing moto's modules on disk each time) and logs the request
line. In the crash tests that was a third of the server's CPU, and the clients wait on it.
This serves the same moto S3 application on the same werkzeug server, with neither.
Given a REQUEST_LOG file, it appends one line per request (method, path and query, client),
so a test can count the requests an operation makes.
"""

from __future__ import annotations

import logging
import sys
import threading

from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def logging_requests(app, path: str):
    """``app`` with each request appended to the file ``path`` as 'METHOD /path?query client'."""
    log, lock = open(path, "a", buffering=1), threading.Lock()

    def logged(environ, start_response):
        query = environ.get("QUERY_STRING")
        client = environ.get("HTTP_USER_AGENT", "-").split(" ")[0]
        with lock:
            log.write(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
                      f"{'?' + query if query else ''} {client}\n")
        return app(environ, start_response)

    return logged


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    served = create_backend_app("s3")
    if len(sys.argv) > 2:
        served = logging_requests(served, sys.argv[2])
    run_simple("127.0.0.1", int(sys.argv[1]), served, threaded=True, request_handler=MotoRequestHandler)
