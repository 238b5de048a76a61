#!/usr/bin/env python3
"""Example SageMaker serving entry point: GET /ping, POST /invocations on port 8080, and a
clean shutdown on SIGTERM (SageMaker sends SIGKILL 30 s later; sminit's serve grace is 25 s)."""

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.reply(200 if self.path == "/ping" else 404, b"")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self.reply(404, b"")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(200, json.dumps({"echo": body.decode(errors="replace")}).encode())

    def reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    # shutdown() waits for serve_forever to return, so it runs on another thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving on port {port}", flush=True)
    server.serve_forever()
    server.server_close()
    print("stopped cleanly", flush=True)


if __name__ == "__main__":
    main()
