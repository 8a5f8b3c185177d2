"""AppProxy under a real uvicorn in front of a real upstream server: methods, streaming both ways,
cookies, redirects, hop-by-hop headers, Host/Origin rewriting, WebSocket upgrades, failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway.servers import Recorder, RunningServer, WithLifespan, free_port, serve, upstream_app
from linkpronto.gateway import AppProxy

PUBLIC = "https://abc123.trycloudflare.com"


@dataclass
class Stack:
    recorder: Recorder
    upstream: RunningServer
    gateway: RunningServer


@pytest.fixture(scope="module", params=[pytest.param("uvloop", marks=pytest.mark.only_on("posix")), "asyncio"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The gateway on uvloop (Linux/macOS) and on the plain asyncio loop (what Windows runs)."""
    recorder = Recorder()
    with serve(upstream_app(recorder), proxy_headers=False) as upstream:
        proxy = AppProxy(lambda: upstream.url, lambda: PUBLIC)
        # As the public listener runs: proxy_headers off (orchestrator.py), forwarding trusted per tunnel.
        with serve(WithLifespan(proxy), loop=request.param, proxy_headers=False) as gateway:
            yield Stack(recorder, upstream, gateway)


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway.url, timeout=5, follow_redirects=False) as c:
        yield c


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_any_method_path_and_query(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/echo?a=1&b=%20x", content=b"payload" if method != "GET" else None)
    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["path"], seen["query"]) == (method, "/echo", "a=1&b=%20x")
    assert seen["body"] == ("payload" if method != "GET" else "")


def test_head_has_no_body(client: httpx.Client) -> None:
    response = client.head("/echo")
    assert response.status_code == 200 and response.content == b""


def test_forwarded_headers_host_and_hop_by_hop(client: httpx.Client, stack: Stack) -> None:
    response = client.get("/echo", headers={
        "Host": "abc123.trycloudflare.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
        "Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9v", "X-App": "kept",
    })
    headers = response.json()["headers"]
    assert headers["host"] == f"localhost:{stack.upstream.port}"
    assert headers["x-forwarded-host"] == "abc123.trycloudflare.com"
    assert headers["x-forwarded-proto"] == "https"
    # A provider without a client header of its own (ssh, static): a visitor's X-Forwarded-For is not
    # believed; the app is told the tunnel's own hop (providers with one: the test below).
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-app"] == "kept"
    for hop in ("x-secret-hop", "keep-alive", "proxy-authorization"):
        assert hop not in headers


def test_every_request_is_marked_public_and_a_client_copy_is_replaced(client: httpx.Client) -> None:
    assert client.get("/echo").json()["headers"]["x-linkpronto-via"] == "public"
    forged = client.post("/echo", headers={"X-Linkpronto-Via": "local"}).json()["headers"]
    assert forged["x-linkpronto-via"] == "public"  # (the echo shows the first copy: the forged one is gone)


def test_forwarded_proto_and_host_cannot_be_spoofed(client: httpx.Client) -> None:
    # Through the public URL (an ssh tunnel adds no X-Forwarded-Proto) the scheme is the public one.
    public = client.get("/echo", headers={"Host": "abc123.trycloudflare.com"}).json()["headers"]
    assert (public["x-forwarded-proto"], public["x-forwarded-host"]) == ("https", "abc123.trycloudflare.com")
    # Whatever Host a visitor sends (ssh, lan, static reach the listener with any Host), the app is told
    # the public host; forwarding headers a client wrote never reach it (issue 19 finding 16).
    spoofed = client.get("/echo", headers={
        "Host": "192.168.0.7:7801", "X-Forwarded-Host": "evil.example", "X-Forwarded-For": "6.6.6.6",
        "Forwarded": "for=6.6.6.6;host=evil.example;proto=https", "X-Real-IP": "6.6.6.6",
        "X-Forwarded-Port": "443", "X-Original-Host": "evil.example"})
    seen = spoofed.json()["headers"]
    assert seen["x-forwarded-host"] == "abc123.trycloudflare.com"
    assert seen["x-forwarded-proto"] == "http"
    assert "forwarded" not in seen and "x-real-ip" not in seen and "x-forwarded-port" not in seen
    assert "x-original-host" not in seen
    assert "6.6.6.6" not in seen["x-forwarded-for"] and "evil" not in repr(seen)


def test_same_origin_is_rewritten_foreign_origin_is_kept(client: httpx.Client, stack: Stack) -> None:
    local = f"http://localhost:{stack.upstream.port}"
    via_public = client.post("/echo", headers={"Host": "abc123.trycloudflare.com", "Origin": PUBLIC})
    assert via_public.json()["headers"]["origin"] == local
    via_lan = client.post("/echo", headers={"Host": "192.168.0.7:7801", "Origin": "http://192.168.0.7:7801"})
    assert via_lan.json()["headers"]["origin"] == local
    foreign = client.post("/echo", headers={"Host": "abc123.trycloudflare.com", "Origin": "https://evil.example"})
    assert foreign.json()["headers"]["origin"] == "https://evil.example"
    opaque = client.post("/echo", headers={"Origin": "null"})
    assert opaque.json()["headers"]["origin"] == "null"


def test_every_set_cookie_is_kept(client: httpx.Client) -> None:
    response = client.get("/cookies")
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("a=1") and "HttpOnly" in cookies[0]
    assert cookies[1].startswith("b=2") and "SameSite=strict" in cookies[1]


def test_proxy_keeps_no_cookie_jar(client: httpx.Client, stack: Stack) -> None:
    client.get("/cookies")
    client.cookies.clear()
    response = httpx.get(stack.gateway.url + "/echo", timeout=5)
    assert "cookie" not in response.json()["headers"]


@pytest.mark.parametrize(
    ("to", "host", "expected"),
    [
        ("relative", "abc123.trycloudflare.com", "/echo?from=redirect"),
        ("ip", "abc123.trycloudflare.com", f"{PUBLIC}/echo?from=ip"),
        ("localhost", "abc123.trycloudflare.com", f"{PUBLIC}/echo?from=localhost"),
        ("localhost", "192.168.0.7:7801", "http://192.168.0.7:7801/echo?from=localhost"),
        ("foreign", "abc123.trycloudflare.com", "https://example.org/elsewhere"),
    ],
)
def test_redirects_are_not_followed_and_location_is_rewritten(
    client: httpx.Client, to: str, host: str, expected: str
) -> None:
    response = client.get(f"/redirect?to={to}", headers={"Host": host})
    assert response.status_code == 302
    assert response.headers["location"] == expected


def test_streamed_response_is_not_buffered(stack: Stack) -> None:
    """The first event reaches the client while the upstream still holds the second one back (until
    the test has the first): a buffering proxy deadlocks here and the read times out."""
    stack.recorder.release_second.clear()
    with httpx.stream("GET", stack.gateway.url + "/slow-stream", timeout=5) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = response.iter_raw()
        first = next(chunks)
        assert not stack.recorder.release_second.is_set()  # the upstream has not sent the second yet
        stack.recorder.release_second.set()
        rest = b"".join(chunks)
    assert first == b"data: first\n\n"
    assert rest == b"data: second\n\n"


def test_endless_stream_stops_upstream_when_client_leaves(stack: Stack) -> None:
    stack.recorder.stream_cancelled.clear()
    with httpx.stream("GET", stack.gateway.url + "/endless", timeout=5) as response:
        lines = response.iter_lines()
        assert next(lines) == "data: 0"
    assert stack.recorder.stream_cancelled.wait(timeout=5)


def test_streamed_upload_keeps_length_and_chunks(client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536

    chunked = client.post("/upload", content=body()).json()
    assert chunked["size"] == 20 * 65536
    sized = client.post("/upload", content=body(), headers={"Content-Length": str(20 * 65536)}).json()
    assert sized["size"] == 20 * 65536 and sized["content_length"] == str(20 * 65536)


def test_large_response(client: httpx.Client) -> None:
    response = client.get("/big")
    assert response.status_code == 200 and len(response.content) == 1024 * 1024
    assert response.headers["content-length"] == str(1024 * 1024)


@pytest.mark.parametrize("code", [204, 304, 404, 500])
def test_statuses_pass(client: httpx.Client, code: int) -> None:
    assert client.get(f"/status/{code}").status_code == code


def test_websocket_upgrade_hmr(stack: Stack) -> None:
    url = f"{stack.gateway.ws_url}/_next/webpack-hmr?id=abc"
    with connect(url, additional_headers={"Origin": f"http://127.0.0.1:{stack.gateway.port}",
                                          "X-Linkpronto-Via": "local"},
                 subprotocols=["chosen.v2"], compression=None, open_timeout=5) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chosen.v2"
        ws.send("headers")
        seen = json.loads(ws.recv(timeout=5))
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=5) == b"\x01\x02"
        ws.send("close:4000:bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    assert seen["__path"] == "/_next/webpack-hmr" and seen["__query"] == "id=abc"
    assert seen["origin"] == f"http://localhost:{stack.upstream.port}"
    assert seen["host"] == f"localhost:{stack.upstream.port}"
    assert seen["x-forwarded-host"] == "abc123.trycloudflare.com"  # the public host, not the one asked
    assert seen["__via"] == ["public"]  # a client's copy is replaced on WebSockets too


def test_websocket_refusal_passes(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.gateway.ws_url}/ws?refuse=401", open_timeout=5)
    assert refused.value.response.status_code == 401


def test_upstream_down_answers_502_page() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with serve(WithLifespan(AppProxy(lambda: dead, lambda: None))) as gw:
        response = httpx.get(gw.url + "/consultations/client/x", timeout=5)
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
        assert "O aplicativo não está respondendo" in response.text
        assert "The app is not answering" in response.text
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{gw.ws_url}/_next/webpack-hmr", open_timeout=5)
        assert refused.value.response.status_code == 502


def test_no_app_answers_503() -> None:
    with serve(WithLifespan(AppProxy(lambda: None, lambda: None))) as gw:
        response = httpx.get(gw.url + "/", timeout=5)
        assert response.status_code == 503 and "The app has not been started yet" in response.text


def test_upstream_connections_are_reused(client: httpx.Client, stack: Stack) -> None:
    ports = {client.get("/echo").json()["client_port"] for _ in range(5)}
    assert len(ports) == 1


def test_upstream_closing_idle_connection_is_survived() -> None:
    recorder = Recorder()
    # uvicorn takes a float keep-alive: after 0.1 s the upstream drops the proxy's idle connection (the
    # proxy must then open a new one instead of failing on the dead one).
    with serve(upstream_app(recorder), keep_alive=0.1, proxy_headers=False) as upstream, \
         serve(WithLifespan(AppProxy(lambda: upstream.url, lambda: None))) as gw:
        first = httpx.get(gw.url + "/echo", timeout=5).json()["client_port"]
        deadline = time.monotonic() + 5
        while upstream.server.server_state.connections:  # until the upstream has dropped it
            assert time.monotonic() < deadline, "the upstream never dropped the idle connection"
            time.sleep(0.01)
        second = httpx.get(gw.url + "/echo", timeout=5)
        assert second.status_code == 200 and second.json()["client_port"] != first


def _raw_upstream(answer: bytes) -> tuple[socket.socket, threading.Event, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            if answer:
                conn.sendall(answer)
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener, stop, thread


def test_body_delimited_by_connection_close() -> None:
    listener, stop, thread = _raw_upstream(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
    port = listener.getsockname()[1]
    try:
        with serve(WithLifespan(AppProxy(lambda: f"http://127.0.0.1:{port}", lambda: None))) as gw:
            response = httpx.get(gw.url + "/", timeout=5)
            assert (response.status_code, response.text) == (200, "until the end")
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_upstream_that_hangs_up_mid_headers_is_502() -> None:
    listener, stop, thread = _raw_upstream(b"")  # reads the request, then hangs up without answering
    port = listener.getsockname()[1]
    try:
        with serve(WithLifespan(AppProxy(lambda: f"http://127.0.0.1:{port}", lambda: None))) as gw:
            assert httpx.get(gw.url + "/", timeout=5).status_code == 502
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_forwarded_for_comes_only_from_the_providers_own_header() -> None:
    """ngrok's edge appends the visitor to X-Forwarded-For: only its entry (the rightmost) is believed;
    with no provider header the app sees the tunnel's own hop, never the visitor's chain."""
    from linkpronto.gateway._headers import forwarded_values

    scope = {"client": ("127.0.0.1", 50000), "scheme": "http"}
    raw = [(b"host", b"x.ngrok.app"), (b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")]
    by_ngrok = dict(forwarded_values(scope, raw, client_ip_header="X-Forwarded-For"))
    assert by_ngrok[b"x-forwarded-for"] == b"203.0.113.7"
    by_ssh = dict(forwarded_values(scope, raw, client_ip_header=None))
    assert by_ssh[b"x-forwarded-for"] == b"127.0.0.1"
    lan = dict(forwarded_values({"client": ("198.18.1.3", 1), "scheme": "http"}, raw,
                                client_ip_header="X-Forwarded-For", public_host="198.18.1.2:7801"))
    assert lan[b"x-forwarded-for"] == b"198.18.1.3" and lan[b"x-forwarded-host"] == b"198.18.1.2:7801"
