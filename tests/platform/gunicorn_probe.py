"""A WSGI app that answers with its worker's pid: tests/platform/test_gunicorn_sockets.py
runs platform/gunicorn.conf.py with it (the project's own app is not needed to see
which worker took a connection)."""

from __future__ import annotations

import os


def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
