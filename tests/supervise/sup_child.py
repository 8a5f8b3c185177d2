"""A small real program the supervisor tests run as a child: ``python child.py MODE [args]``.

Modes (stdlib only, output unbuffered):
- ``http PORT DELAY [HEALTH_FILE]``: after DELAY seconds serve HTTP on 127.0.0.1:PORT; ``GET /``
  answers ``OK``; ``GET /health`` answers 200, or 500 while HEALTH_FILE exists.
- ``ignore-term``: ignore SIGTERM, print ``ready``, sleep.
- ``tree``: start a grandchild (``python -c 'sleep'``), print ``pids CHILD GRANDCHILD``, sleep.
- ``crash CODE LINES TEXT``: print LINES lines ``line I TEXT`` and exit with CODE.
- ``listen PORT``: listen on 127.0.0.1:PORT without answering HTTP; print ``listening``.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    health_file = ""

    def do_GET(self) -> None:
        if self.path == "/health" and self.health_file and os.path.exists(self.health_file):
            self.send_response(500)
            self.end_headers()
            return
        body = b"OK"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "http":
        port, delay = int(argv[1]), float(argv[2])
        _Handler.health_file = argv[3] if len(argv) > 3 else ""
        time.sleep(delay)
        server = http.server.HTTPServer(("127.0.0.1", port), _Handler)
        print(f"serving on {port}", flush=True)
        server.serve_forever()
    elif mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    elif mode == "tree":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(f"pids {os.getpid()} {grandchild.pid}", flush=True)
        time.sleep(60)
    elif mode == "crash":
        code, lines, text = int(argv[1]), int(argv[2]), argv[3]
        for i in range(lines):
            print(f"line {i} {text}", flush=True)
        return code
    elif mode == "listen":
        sock = socket.socket()
        sock.bind(("127.0.0.1", int(argv[1])))
        sock.listen(8)
        print("listening", flush=True)
        time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
