"""Crowds of slow clients held open against a listener from a thread of their own (tests and
bench/edge.py): slow headers (:class:`SlowCrowd`) and slow chunked bodies (:class:`BodyCrowd`).
Each re-opens any connection the server closes or answers, so the count stays up — an attacker
who reconnects at once, as a real one would."""

from __future__ import annotations

import asyncio
import threading
import time


class SlowCrowd:
    """Keeps ``n`` slow-header connections open on ``port`` (re-opening any the server closes)."""

    def __init__(self, port: int, n: int) -> None:
        self.port, self.n = port, n
        self.loop = asyncio.new_event_loop()
        self.stop = threading.Event()
        self.open = 0
        self.samples: list[int] = []
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)

    def __enter__(self) -> SlowCrowd:
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.open < self.n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    async def _one(self) -> None:
        """One attacker: connect, hold the connection as :meth:`_hold` does, reconnect at once."""
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            self.open += 1
            try:
                await self._hold(reader, writer)
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                self.open -= 1
                writer.close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Idle: a request head that never ends. The server closes it at its header deadline
        # (10 s); the holder then opens another, so the count stays up.
        writer.write(b"GET /_linkpronto/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while await reader.read(1024):
            pass

    async def _run(self) -> None:
        tasks = [asyncio.create_task(self._one()) for _ in range(self.n)]
        while not self.stop.is_set():
            await asyncio.sleep(0.25)
            self.samples.append(self.open)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class BodyCrowd(SlowCrowd):
    """Keeps ``n`` slow *bodies* open: a chunked POST to ``path`` that sends a byte a second."""

    def __init__(self, port: int, n: int, path: str) -> None:
        super().__init__(port, n)
        self.path = path

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                     "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n".encode())
        while not self.stop.is_set() and not reader.at_eof():
            writer.write(b"1\r\na\r\n")
            try:
                await asyncio.wait_for(reader.read(1024), 1.0)
            except TimeoutError:
                continue
            return  # closed, or an answer (408/503): the server is done with it
