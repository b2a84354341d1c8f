"""moto's S3 server, S3 only and quiet: ``python tests/s3_server.py PORT``.

``python -m moto.server`` answers every AWS service: for each request it works out which one
from the host and headers (listing moto's modules on disk each time) and logs the request
line. In the crash tests that was a third of the server's CPU, and the clients wait on it.
This serves the same moto S3 application on the same werkzeug server, with neither.
"""

from __future__ import annotations

import logging
import sys

from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    run_simple("127.0.0.1", int(sys.argv[1]), create_backend_app("s3"), threaded=True,
               request_handler=MotoRequestHandler)
