#!/usr/bin/env python3
"""cartd --access-log: one Common Log Format line per answered request.

Requests good and bad (every API route, 400, 404, 405, 415, an HTTP/1.0
one, a target with a quote, a backslash and bytes outside ASCII) and a
burst of 2,000 over 8 connections on 2 server threads; the lines appear
while cartd runs (each thread hands its lines over within about a
second), the rest at SIGTERM; then every line is well-formed (address,
date, quoted request with what could break the field escaped, status,
body size or "-"), and there is exactly one per request, with its status
and size. Also: CART_ACCESS_LOG in the environment, '-' for stdout, and a
file that cannot be opened refused at start.

Usage: test_access_log.py PATH/TO/cartd"""
import collections
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

CARTD = sys.argv[1]
WAIT = 10.0
failures = 0
checks = 0

LINE = re.compile(r'(\S+) - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
                  r'"((?:[^"\\\x00-\x1f\x7f-\xff]|\\x[0-9A-F]{2})*)" (\d{3}) (\d+|-)\n')


def check(condition, what):
    global failures, checks
    checks += 1
    if not condition:
        failures += 1
        print("FAIL:", what, flush=True)
    return condition


def start(workdir, *args, env=None):
    out_path = os.path.join(workdir, f"cartd-{len(os.listdir(workdir))}.out")
    out = open(out_path, "wb")
    proc = subprocess.Popen([CARTD, "--in-memory", "--listen", "0", "--bus", "none",
                             "--shards", "4", "--threads", "2", *args],
                            stdout=out, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + WAIT
    while True:
        with open(out_path, "rb") as f:
            first = f.readline().decode(errors="replace")
        found = re.match(r"cartd: http://127\.0\.0\.1:(\d+)/", first)
        if found:
            return proc, int(found.group(1)), out_path
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"cartd did not start: {proc.stderr.read().decode()}")
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Client:
    """One keep-alive connection; request() returns (status, body bytes)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffered = b""

    def request(self, method, target, body=None, content_type="application/json",
                version=b"HTTP/1.1"):
        head = method + b" " + target + b" " + version + b"\r\nHost: x\r\n"
        if body is not None:
            head += (f"Content-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\n").encode()
        self.sock.sendall(head + b"\r\n" + (body or b""))
        while b"\r\n\r\n" not in self.buffered:
            self._more()
        head, self.buffered = self.buffered.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(self.buffered) < length:
            self._more()
        self.buffered = self.buffered[length:]
        return status, length

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffered += data

    def close(self):
        self.sock.close()


def escaped(raw):
    """A request field as the log must write it."""
    return "".join(chr(b) if 0x20 <= b <= 0x7e and b not in b'"\\' else f"\\x{b:02X}"
                   for b in raw)


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1").splitlines(keepends=True)
    except FileNotFoundError:
        return []


def wait_lines(path, count):
    """Polls (with a bound) until the file holds COUNT lines; returns them."""
    deadline = time.monotonic() + WAIT
    while True:
        lines = read_lines(path)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)   # polling a file with a bound, not synchronising


def expect_lines(lines, wanted, what, started, ended):
    """Every line well-formed; the multiset of (request, status, size) is WANTED."""
    got = collections.Counter()
    for line in lines:
        parsed = LINE.fullmatch(line)
        if not check(parsed, f"{what}: a malformed line {line!r}"):
            continue
        host, date, request, status, size = parsed.groups()
        check(host == "127.0.0.1", f"{what}: host {host!r}")
        when = datetime.datetime.strptime(date, "%d/%b/%Y:%H:%M:%S %z").timestamp()
        check(started - 1 <= when <= ended + 1,
              f"{what}: date {date} outside the run ({started:.0f}..{ended:.0f})")
        got[(request, int(status), size)] += 1
    check(got == wanted, f"{what}: lines differ from the requests: missing "
                         f"{dict(wanted - got)}, unexpected {dict(got - wanted)}")


def test_file(workdir):
    path = os.path.join(workdir, "access.log")
    started = time.time()
    proc, port, _ = start(workdir, "--access-log", path)
    wanted = collections.Counter()
    client = Client(port)

    def send(method, target, body=None, want=None, **options):
        status, length = client.request(method, target, body, **options)
        check(want is None or status == want,
              f"{method} {target}: {status}, want {want}")
        version = options.get("version", b"HTTP/1.1").decode()
        wanted[(f"{escaped(method)} {escaped(target)} {version}", status,
                str(length) if length else "-")] += 1

    send(b"POST", b"/item/c1/i1", b'{"offeredPrice": 2.5, "itemCount": 2}', 201)
    send(b"POST", b"/items/c1/i1", b'{"offeredPrice": 2.5, "unitCount": 1}', 200)
    send(b"PUT", b"/item/c1/i1", b'{"newCount": 4}', 200)
    send(b"GET", b"/items/c1", None, 200)
    send(b"DELETE", b"/item/c1/i1", None, 204)
    send(b"POST", b"/item/c1/i2", b'{"offeredPrice": 1}', 201)
    send(b"DELETE", b"/items/c1", None, 200)
    send(b"GET", b"/healthz", None, 200)
    send(b"GET", b"/metrics", None, 200)
    send(b"GET", b"/nowhere", None, 404)
    send(b"PATCH", b"/items/c1", None, 405)
    send(b"POST", b"/item/c1/i3", b"{not json", 400)
    send(b"POST", b"/item/c1/i3", b'{"offeredPrice": 1}', 415, content_type="text/plain")
    send(b"GET", b"/items/bad%2Fid", None, 400)
    send(b"GET", b'/x"y\\z\xc3\xa9%00', None, 404)
    send(b"GET", b"/items/c1?q=1", None, 200)   # the query is not logged
    send(b"GET", b"/items/c1", None, 200, version=b"HTTP/1.0")
    client.close()
    wanted = collections.Counter({(r.replace("?q=1", ""), s, n): c
                                  for (r, s, n), c in wanted.items()})
    # Logged while cartd runs: each thread hands its lines over within about
    # a second of the first
    lines = wait_lines(path, sum(wanted.values()))
    check(len(lines) == sum(wanted.values()),
          f"{len(lines)} of {sum(wanted.values())} lines written within {WAIT} s")

    # A burst over 8 connections at once, then SIGTERM at once: the lines
    # still buffered are written at exit
    def burst(index):
        c = Client(port)
        for i in range(250):
            c.request(b"GET", f"/items/burst-{index}-{i}".encode())
        c.close()

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        for i in range(250):
            wanted[(f"GET /items/burst-{k}-{i} HTTP/1.1", 200,
                    str(len(f'{{"customerId": "burst-{k}-{i}", "items": [], '
                            f'"itemCount": 0, "total": 0.00}}')))] += 1
    before_stop = len(read_lines(path))
    check(stop(proc) == 0, "cartd exits 0 on SIGTERM")
    ended = time.time()
    lines = read_lines(path)
    print(f"{before_stop} lines before SIGTERM, {len(lines)} after", flush=True)
    expect_lines(lines, wanted, "--access-log FILE", started, ended)


def test_environment_and_stdout(workdir):
    path = os.path.join(workdir, "env.log")
    started = time.time()
    proc, port, _ = start(workdir, env={"CART_ACCESS_LOG": path})
    client = Client(port)
    status, length = client.request(b"GET", b"/items/env")
    client.close()
    check(stop(proc) == 0, "cartd (CART_ACCESS_LOG) exits 0 on SIGTERM")
    expect_lines(read_lines(path),
                 collections.Counter({("GET /items/env HTTP/1.1", status, str(length)): 1}),
                 "CART_ACCESS_LOG", started, time.time())

    proc, port, out_path = start(workdir, "--access-log", "-")
    client = Client(port)
    status, length = client.request(b"DELETE", b"/item/c/none")
    client.close()
    check(stop(proc) == 0, "cartd (--access-log -) exits 0 on SIGTERM")
    out = read_lines(out_path)
    expect_lines([line for line in out if not line.startswith("cartd:")],
                 collections.Counter({("DELETE /item/c/none HTTP/1.1", status,
                                       str(length)): 1}),
                 "--access-log -", started, time.time())

    bad = subprocess.run([CARTD, "--in-memory", "--listen", "0", "--bus", "none",
                          "--access-log", os.path.join(workdir, "no", "such", "dir")],
                         capture_output=True, text=True, timeout=WAIT)
    check(bad.returncode == 1 and "cannot open the access log" in bad.stderr,
          f"an access log that cannot be opened: {bad.returncode} {bad.stderr!r}")


def main():
    workdir = tempfile.mkdtemp(prefix="test_access_log.")
    test_file(workdir)
    test_environment_and_stdout(workdir)
    print(f"{checks - failures} passed, {failures} failed")
    if failures:
        print(f"files kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failures else 0)


main()
