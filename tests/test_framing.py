#!/usr/bin/env python3
"""Our libmicrohttpd (deps/patches/libmicrohttpd-0.9.75.patch) inside cartd,
over raw sockets: requests framed two ways (request smuggling), a raw NUL
in the path, no Host, too many query arguments and huge chunk sizes are
answered at once, 400 (or the status named) in the API's JSON error shape,
and the connection closed; libmicrohttpd's own answers that were HTML pages
(414, 431, 505, a bad chunk) are JSON; valid requests still work, keep-alive
and chunked. Every answer to a request whose line parses is checked
against the API's OpenAPI description (cart_openapi). Usage:
test_framing.py PATH/TO/cartd"""
import json
import re
import socket
import subprocess
import sys
import time

import cart_openapi
import cart_process

CARTD = sys.argv[1]
WAIT = 3.0      # every receive gives up after this: a stall fails at once
PROMPT = 1.0    # an answer must come within this (the stalls were 30 s)
failures = 0
checks = 0
SPEC = None     # the served description, once the server is up
REQUEST_LINE = re.compile(rb"([A-Z]+) (/[^ \r\n]*) HTTP/1\.[01]\r\n")


def check(condition, what):
    global failures, checks
    checks += 1
    if not condition:
        failures += 1
        print("FAIL:", what)
    return condition


class Connection:
    """One client connection; every receive bounded by WAIT."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffered = b""

    def close(self):
        self.sock.close()

    def _more(self):
        data = self.sock.recv(65536)   # socket.timeout past WAIT
        if not data:
            raise EOFError
        self.buffered += data

    def response(self):
        """(status, {lowercase name: value}, body) of the next response."""
        while b"\r\n\r\n" not in self.buffered:
            self._more()
        head, self.buffered = self.buffered.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffered) < length:
            self._more()
        body, self.buffered = self.buffered[:length], self.buffered[length:]
        return status, headers, body

    def closed_by_server(self):
        """True if the server closes the connection (EOF or reset) now."""
        try:
            self._more()
        except (EOFError, ConnectionResetError):
            return True
        except socket.timeout:
            return False
        return False


def exchange(port, raw, wait_close=False):
    """Sends raw, returns (status, headers, body, seconds, closed), closed
    telling whether the server closed the connection after the answer
    (always False unless wait_close), or None, having counted a failure,
    when no full answer comes."""
    conn = Connection(port)
    try:
        started = time.monotonic()
        conn.sock.sendall(raw)
        status, headers, body = conn.response()
        seconds = time.monotonic() - started
        line = REQUEST_LINE.match(raw)
        if SPEC and line:
            method, target = line.group(1).decode(), line.group(2).decode("latin-1")
            problems = SPEC.validate(method, target, status, headers, body)
            check(not problems, f"{raw[:70]!r}...: not as described: {problems}")
        return status, headers, body, seconds, wait_close and conn.closed_by_server()
    except (socket.timeout, EOFError, ConnectionResetError) as error:
        check(False, f"no answer to {raw[:70]!r}...: {type(error).__name__}")
        return None
    finally:
        conn.close()


def json_error_of(status, headers, body):
    """The error object of a JSON error body that matches status, or None."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if (headers.get("content-type") != "application/json" or not isinstance(value, dict)
            or list(value) != ["error"] or not isinstance(value["error"], dict)):
        return None
    error = value["error"]
    if (sorted(error) != ["message", "status"] or error["status"] != status
            or not isinstance(error["message"], str) or not error["message"]):
        return None
    return error


refused = {}  # status: requests refused before any route, for /metrics


def expect_error(port, name, raw, want):
    """raw is refused with status want, promptly, in JSON, connection closed."""
    refused[want] = refused.get(want, 0) + 1
    got = exchange(port, raw, wait_close=True)
    if got is None:
        return
    status, headers, body, seconds, closed = got
    check(status == want, f"{name}: status {status}, want {want}: {body!r}")
    check(json_error_of(status, headers, body) is not None,
          f"{name}: not a JSON error body of {status} with Content-Type "
          f"application/json: {headers.get('content-type')!r} {body!r}")
    check(seconds < PROMPT, f"{name}: answered after {seconds:.2f} s")
    check(headers.get("connection", "").lower() == "close" and closed,
          f"{name}: the connection stays open")


def request(method, path, body=None, extra=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n".encode()
    if body is not None:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + (body or b"")


def wait_healthy(port):
    """Polls GET /healthz, with a deadline, until every shard is served."""
    until = time.monotonic() + 30
    while time.monotonic() < until:
        got = exchange(port, request("GET", "/healthz", extra=b"Connection: close\r\n"))
        if got and got[0] == 200:
            return
        time.sleep(0.05)
    sys.exit("cartd never became healthy")


proc, port = cart_process.start_cartd(CARTD)
wait_healthy(port)
try:
    SPEC = cart_openapi.fetch(port)
except (OSError, ValueError) as error:
    proc.kill()
    sys.exit(f"GET /openapi.json: {error}")

ITEM = b'{"offeredPrice": 2.50, "itemCount": 2}'
POST = (b"POST /item/framing/i1 HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n")

# Framing, RFC 9112: each is 400, at once, and the connection closed
cases = [
    ("two different Content-Lengths",
     POST + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(ITEM), len(ITEM) + 1)
     + ITEM),
    ("two equal Content-Lengths",
     POST + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(ITEM), len(ITEM))
     + ITEM),
    ("Content-Length with Transfer-Encoding: chunked",
     POST + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(ITEM)
     + b"%x\r\n%s\r\n0\r\n\r\n" % (len(ITEM), ITEM)),
    ("Transfer-Encoding: gzip",
     POST + b"Transfer-Encoding: gzip\r\n\r\n" + ITEM),
    ("Transfer-Encoding: gzip, chunked",
     POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked twice",
     POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("HTTP/1.1 without Host",
     b"GET /items/framing HTTP/1.1\r\n\r\n"),
    ("two Hosts",
     b"GET /items/framing HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("obs-fold: a Content-Length folded onto a second line (smuggling)",
     b"GET /items/framing HTTP/1.1\r\nHost: localhost\r\nContent-Length:\r\n 42\r\n\r\n"
     b"DELETE /items/framing HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("obs-fold of an ordinary header",
     b"GET /items/framing HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n\tb\r\n\r\n"),
    ("a header name with a control byte",
     b"GET /items/framing HTTP/1.1\r\nHost: localhost\r\nContent-Length\x0b: 5\r\n\r\n"),
    ("two Content-Types (read the first here, maybe the last by a proxy)",
     POST + b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(ITEM) + ITEM),
    ("an empty header name",
     b"GET /items/framing HTTP/1.1\r\nHost: localhost\r\n: v\r\n\r\n"),
    ("whitespace before a header's colon",
     POST + b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n\r\n" % len(ITEM) + ITEM),
    ("a NUL in a header",
     b"GET /items/framing HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n"),
    ("a bare CR in a header",
     b"GET /items/framing HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n"),
    ("chunk size 2^64 - 1, no data",
     POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab"),
    ("chunk size 2^63, line not ended",
     POST + b"Transfer-Encoding: chunked\r\n\r\n8000000000000000"),
    ("chunk size past 2^64 - 1",
     POST + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n"),
    ("a request line that cannot be parsed",
     b"NONSENSE\r\n\r\n"),
]
for name, raw in cases:
    expect_error(port, name, raw, 400)

# A raw NUL in the path is refused, and the cart it would cut to is intact
got = exchange(port, request("POST", "/item/nulvictim/i1", ITEM))
check(got is not None and got[0] == 201, f"add to nulvictim: {got}")
expect_error(port, "a raw NUL in the path",
             b"DELETE /items/nulvictim\x00.x HTTP/1.1\r\nHost: localhost\r\n\r\n", 400)
got = exchange(port, request("GET", "/items/nulvictim"))
check(got is not None and got[0] == 200 and b'"i1"' in got[2],
      f"nulvictim's cart after the NUL request: {got}")

# Query arguments: a few are answered for real, 480 get an answer (they
# stalled for 30 s), and so does every count around the first that the
# connection's memory pool cannot hold (459 and 460 were closed unanswered
# in a 32 KiB pool): 414, or 431 when the header after them does not fit
def query(count):
    return request("GET", "/items/framing?" + "&".join(f"a{i}=1" for i in range(count)),
                   extra=b"Connection: close\r\n")


def expect_answer(count):
    """The status of the answer to count arguments, or None (a failure)."""
    got = exchange(port, query(count), wait_close=True)
    if got is None:
        return None
    status, headers, body, seconds, closed = got
    check(seconds < PROMPT, f"{count} query arguments: answered after {seconds:.2f} s")
    check(status == 200 or (status in (414, 431) and closed
                            and json_error_of(status, headers, body) is not None),
          f"{count} query arguments: {status} {headers} {body!r}")
    return status


check(expect_answer(100) == 200, "100 query arguments are answered for real")
expect_answer(480)
first_refused = None
for count in range(400, 4000, 16):
    if expect_answer(count) != 200:
        first_refused = count
        break
if check(first_refused is not None, "4,000 query arguments still answered 200"):
    for count in range(first_refused - 48, first_refused + 48):
        expect_answer(count)

# libmicrohttpd's own answers, once HTML, now JSON
html_cases = [
    ("an overlong URI", request("GET", "/items/" + "a" * 40000), 414),
    ("oversized headers",
     request("GET", "/items/framing", extra=b"X-Big: " + b"a" * 40000 + b"\r\n"), 431),
    ("HTTP/3.0", b"GET /items/framing HTTP/3.0\r\nHost: localhost\r\n\r\n", 505),
    ("HTTP/0.9", b"GET /items/framing HTTP/0.9\r\nHost: localhost\r\n\r\n", 505),
    ("a bad chunk", POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("a chunk not ended by CRLF",
     POST + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", 400),
    ("a Content-Length past 2^64 - 1",
     POST + b"Content-Length: 99999999999999999999\r\n\r\n", 413),
    ("a Content-Length that is not a number", POST + b"Content-Length: 1x\r\n\r\n", 400),
]
for name, raw, want in html_cases:
    expect_error(port, name, raw, want)

# None of the refused requests changed anything
got = exchange(port, request("GET", "/items/framing"))
check(got is not None and got[0] == 200 and json.loads(got[2])["items"] == [],
      f"the cart the refused requests named: {got and got[2]}")

# Valid requests still work: a POST then a GET on one kept-alive
# connection, a chunked POST, HTTP/1.0 without Host
conn = Connection(port)
try:
    conn.sock.sendall(request("POST", "/item/framing/i2", ITEM))
    status, headers, body = conn.response()
    check(status == 201 and json.loads(body)["itemCount"] == 2, f"POST: {status} {body!r}")
    check(headers.get("connection", "").lower() != "close", f"POST closes: {headers}")
    conn.sock.sendall(request("GET", "/items/framing"))
    status, headers, body = conn.response()
    check(status == 200 and [i["itemId"] for i in json.loads(body)["items"]] == ["i2"],
          f"GET after POST on one connection: {status} {body!r}")
except (socket.timeout, EOFError, ConnectionResetError, ValueError, KeyError) as error:
    check(False, f"POST then GET on one connection: {type(error).__name__} {error}")
finally:
    conn.close()
chunked = POST.replace(b"/i1", b"/i3") + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
    b"%x\r\n%s\r\n" % (len(part), part) for part in (ITEM[:10], ITEM[10:])) + b"0\r\n\r\n"
got = exchange(port, chunked)
check(got is not None and got[0] == 201, f"chunked POST: {got and got[:3]}")
got = exchange(port, b"GET /items/framing HTTP/1.0\r\n\r\n")
check(got is not None and got[0] == 200 and b'"i3"' in got[2],
      f"HTTP/1.0 without Host: {got and got[:3]}")

# Each refusal is counted in /metrics, under route="invalid" (the scan of
# query sizes above adds some 414s and 431s of its own)
got = exchange(port, request("GET", "/metrics"))
counted = {}
for line in (got[2].decode() if got else "").splitlines():
    found = re.match(r'cart_http_requests_total\{route="invalid",status="(\d+)"\} (\d+)$', line)
    if found:
        counted[int(found.group(1))] = int(found.group(2))
for status, count in sorted(refused.items()):
    check(counted.get(status, 0) >= count,
          f"/metrics counts {counted.get(status, 0)} refusals of {status}, at least "
          f"{count} were made: {counted}")

proc.terminate()
try:
    check(proc.wait(timeout=30) == 0, f"cartd exits {proc.returncode} on SIGTERM")
except subprocess.TimeoutExpired:
    proc.kill()
    check(False, "cartd did not stop within 30 s of SIGTERM")

print(f"{checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
