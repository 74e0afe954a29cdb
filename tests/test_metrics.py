#!/usr/bin/env python3
"""/metrics and `cartctl stats` as an operator reads them.

1. cartd, after requests that give every route and many statuses a sample
   (good ones, bad JSON, 404, 405, 413, 415, a request libmicrohttpd
   refuses itself): `promtool check metrics` passes with nothing to say
   (no lint warning either), and each metric family is one group (its
   HELP, its TYPE, then all its samples, its name nowhere else).
2. A cluster of processes (broker, two shard workers for shards 0 and 1 of
   3, http_front): every shard's load age is shown (a gauge, a column);
   shard 2, never served, has no age ("never"); after `kill -9` of the
   worker of shard 1 its carts, items and expired samples are gone and
   `cartctl stats` shows '-' for them, while its age keeps growing and
   promtool still passes.

Usage: test_metrics.py BIN_DIR (where cartd, broker, shard_worker,
http_front and cartctl are)."""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from cart_shards import hash_key, jump

BIN_DIR = sys.argv[1]
WAIT = 10.0   # the longest any awaited state may take
failures = 0
checks = 0


def check(condition, what):
    global failures, checks
    checks += 1
    if not condition:
        failures += 1
        print("FAIL:", what, flush=True)
    return condition


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Program:
    """A program of BIN_DIR; its output in files of WORKDIR."""
    every = []

    def __init__(self, workdir, name, *args):
        self.name = name
        stem = os.path.join(workdir, f"{len(Program.every)}-{name}")
        self.out_path = stem + ".out"
        with open(self.out_path, "wb") as out, open(stem + ".err", "wb") as err:
            self.popen = subprocess.Popen([os.path.join(BIN_DIR, name), *args],
                                          stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err)
        Program.every.append(self)

    def first_line(self):
        deadline = time.monotonic() + WAIT
        while True:
            with open(self.out_path, "rb") as f:
                data = f.read(4096)
            if b"\n" in data:
                return data.split(b"\n", 1)[0].decode(errors="replace")
            if self.popen.poll() is not None or time.monotonic() >= deadline:
                sys.exit(f"{self.name} printed no first line (status "
                         f"{self.popen.poll()})")
            try:
                self.popen.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, sig=signal.SIGTERM):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


def port_of(program, pattern):
    line = program.first_line()
    found = re.search(pattern, line)
    if not found:
        sys.exit(f"{program.name}: unexpected first line {line!r}")
    return int(found.group(1))


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def wait_for(what, probe):
    """probe() until it returns a true value, for up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            sys.exit(f"not within {WAIT} s: {what}")
        time.sleep(0.05)   # polling with a bound, not synchronising


def healthy(port):
    try:
        return request(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def promtool(text, what):
    """promtool check metrics on TEXT: it must pass and say nothing."""
    out = subprocess.run(["promtool", "check", "metrics"], input=text,
                         capture_output=True, text=True, timeout=WAIT)
    said = (out.stdout + out.stderr).strip()
    check(out.returncode == 0 and not said,
          f"promtool check metrics on {what}: status {out.returncode}: {said}")


def family_of(name, types):
    """The family a sample name belongs to (a histogram's _bucket, _sum and
    _count are its own)."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def check_groups(text, what):
    """Each family: HELP, TYPE, then its samples, and then never again.
    Returns {family: [(labels, value), ...]}."""
    types, done, samples = {}, set(), {}
    current = None
    for line in text.splitlines():
        comment = re.match(r"# (HELP|TYPE) (\S+) ?(.*)", line)
        if comment:
            kind, name, rest = comment.groups()
            if kind == "HELP":
                check(name not in done and name != current,
                      f"{what}: a second HELP for {name}")
                if current:
                    done.add(current)
                current = name
            else:
                check(name == current and name not in types,
                      f"{what}: TYPE {name} is not right after its HELP")
                types[name] = rest
            continue
        sample = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not check(sample, f"{what}: not a sample line: {line!r}"):
            continue
        family = family_of(sample.group(1), types)
        check(family == current and family in types,
              f"{what}: {sample.group(1)} outside its family's group (in {current})")
        samples.setdefault(family, []).append((sample.group(2) or "",
                                               float(sample.group(3))))
    return samples


def by_shard(samples, family):
    return {int(re.search(r'shard="(\d+)"', labels).group(1)): value
            for labels, value in samples.get(family, [])}


def metrics(port, must=True):
    """The text of /metrics; with must false, "" when it is not 200 (the
    front has no connection to the broker yet)."""
    status, text = request(port, "GET", "/metrics")
    if not must and status != 200:
        return ""
    check(status == 200, f"/metrics answered {status}")
    return text


def customer_of(shards, served):
    """A customer id whose cart a shard in SERVED owns, among SHARDS."""
    return next(c for c in (f"c{i}" for i in range(1000))
                if jump(hash_key(c), shards) in served)


def traffic(port, customer="c1", health=200):
    """Requests that give many labels a sample; the statuses they must get."""
    json = {"Content-Type": "application/json"}
    cases = [
        ("POST", "/item/c1/i1", '{"offeredPrice": 1.5, "itemCount": 2}', json, 201),
        ("POST", "/items/c1/i1", '{"offeredPrice": 1.5, "unitCount": 1}', json, 200),
        ("PUT", "/item/c1/i1", '{"newCount": 5}', json, 200),
        ("GET", "/items/c1", None, None, 200),
        ("DELETE", "/item/c1/nope", None, None, 404),
        ("POST", "/item/c1/i2", "{bad json", json, 400),
        ("POST", "/item/c1/i2", '{"offeredPrice": 1}', {"Content-Type": "text/plain"},
         415),
        ("POST", "/item/c1/i2", "x" * 20000, json, 413),
        ("PATCH", "/items/c1", None, None, 405),
        ("GET", "/nowhere", None, None, 404),
        ("DELETE", "/items/c1", None, None, 200),
        ("DELETE", "/items/c1", None, None, 404),
        ("GET", "/healthz", None, None, health),
    ]
    for method, path, body, headers, want in cases:
        path = path.replace("c1", customer)
        status, _ = request(port, method, path, body, headers)
        check(status == want, f"{method} {path}: {status}, want {want}")
    # One that libmicrohttpd answers itself (no Host in HTTP/1.1)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(b"GET /items/c1 HTTP/1.1\r\n\r\n")
        check(s.recv(4096).startswith(b"HTTP/1.1 400"), "a request without Host is 400")


def cartctl_stats(bus):
    out = subprocess.run([os.path.join(BIN_DIR, "cartctl"), "stats", "--broker", bus],
                         capture_output=True, text=True, timeout=WAIT)
    rows = {}
    lines = out.stdout.splitlines()
    check(lines and lines[0].split() == ["shard", "live", "carts", "items", "expired",
                                         "requests", "age"],
          f"cartctl stats' header: {lines[:1]}")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) == 7 and fields[0].isdigit():
            rows[int(fields[0])] = fields
    return out.returncode, rows


def test_cartd(workdir):
    bus = f"tcp://127.0.0.1:{free_port()}"
    cartd = Program(workdir, "cartd", "--in-memory", "--listen", "0", "--bus", bus,
                    "--shards", "4")
    port = port_of(cartd, r"cartd: http://127\.0\.0\.1:(\d+)/")
    wait_for("cartd's /healthz is 200", lambda: healthy(port))
    traffic(port)
    # A load comes once a second: wait until every shard has an age
    wait_for("every shard has a load age", lambda: len(by_shard(
        check_groups(metrics(port), "cartd"), "cart_shard_load_age_seconds")) == 4)
    text = metrics(port)   # the one before is counted in it
    promtool(text, "cartd's /metrics")
    samples = check_groups(text, "cartd's /metrics")
    statuses = {re.search(r'status="(\w+)"', labels).group(1)
                for labels, _ in samples.get("cart_http_requests_total", [])}
    check({"200", "201", "400", "404", "405", "413", "415"} <= statuses,
          f"statuses counted: {sorted(statuses)}")
    routes = {re.search(r'route="(\w+)"', labels).group(1)
              for labels, _ in samples.get("cart_http_requests_total", [])}
    check(routes == {"list", "add", "set", "remove", "checkout", "healthz", "metrics",
                     "other", "invalid"}, f"routes counted: {sorted(routes)}")
    for family in ("cart_shard_up", "cart_shard_keys", "cart_shard_items",
                   "cart_carts_expired_total", "cart_shard_load_age_seconds"):
        check(sorted(by_shard(samples, family)) == [0, 1, 2, 3],
              f"{family} has a sample for each shard: {samples.get(family)}")
    check(all(0 <= age < WAIT
              for age in by_shard(samples, "cart_shard_load_age_seconds").values()),
          f"load ages: {samples.get('cart_shard_load_age_seconds')}")
    rc, rows = cartctl_stats(bus)
    check(rc == 0 and sorted(rows) == [0, 1, 2, 3], f"cartctl stats: {rc} {rows}")
    for row in rows.values():
        check(row[1] == "yes" and re.fullmatch(r"\d+\.\ds", row[6]),
              f"a live shard's row shows an age: {row}")
    check(cartd.stop() == 0, "cartd exits 0 on SIGTERM")


def test_cluster(workdir):
    front_ep = f"tcp://127.0.0.1:{free_port()}"
    back_ep = f"tcp://127.0.0.1:{free_port()}"
    Program(workdir, "broker", "--frontend", front_ep, "--backend", back_ep,
            "--shards", "3")
    workers = [Program(workdir, "shard_worker", "--broker", back_ep, "--shards", "3",
                       "--shard", str(k)) for k in (0, 1)]
    front = Program(workdir, "http_front", "--listen", "0", "--broker", front_ep)
    port = port_of(front, r"http://127\.0\.0\.1:(\d+)")

    def shards_live():
        text = metrics(port, must=False)
        up = by_shard(check_groups(text, "the cluster"), "cart_shard_up")
        ages = by_shard(check_groups(text, "the cluster"), "cart_shard_load_age_seconds")
        # /healthz lists the shards only once every server thread of the
        # front has its connection to the broker (before, it names the
        # threads without one, and their requests are 503)
        threads_up = '"shards"' in request(port, "GET", "/healthz")[1]
        return (up.get(0) == 1 and up.get(1) == 1 and 0 in ages and 1 in ages and
                threads_up and text)

    wait_for("shards 0 and 1 live, with loads, every front thread connected",
             shards_live)
    traffic(port, customer_of(3, (0, 1)), health=503)
    text = metrics(port)
    promtool(text, "the cluster's /metrics")
    samples = check_groups(text, "the cluster")
    check(by_shard(samples, "cart_shard_up") == {0: 1, 1: 1, 2: 0},
          f"up: {samples.get('cart_shard_up')}")
    check(sorted(by_shard(samples, "cart_shard_load_age_seconds")) == [0, 1],
          "shard 2, never served, has no load age")
    for family in ("cart_shard_keys", "cart_shard_items", "cart_carts_expired_total"):
        check(sorted(by_shard(samples, family)) == [0, 1],
              f"{family}: live shards only: {samples.get(family)}")
    rc, rows = cartctl_stats(front_ep)
    check(rc == 3 and rows.get(2, [None] * 7)[6] == "never"
          and rows[2][2:5] == ["-", "-", "-"], f"cartctl stats, shard 2: {rc} {rows}")

    # Shard 1's worker dies: its counts go, its age grows
    workers[1].stop(signal.SIGKILL)

    def shard_1_down():
        text = metrics(port)
        return by_shard(check_groups(text, "the cluster"), "cart_shard_up").get(1) == 0 \
            and text

    text = wait_for("shard 1 shown down", shard_1_down)
    promtool(text, "the cluster's /metrics with shard 1 down")
    samples = check_groups(text, "shard 1 down")
    for family in ("cart_shard_keys", "cart_shard_items", "cart_carts_expired_total"):
        check(sorted(by_shard(samples, family)) == [0],
              f"{family} after shard 1 died: {samples.get(family)}")
    age = by_shard(samples, "cart_shard_load_age_seconds").get(1)
    check(age is not None, "a dead shard still shows its load's age")
    if age is not None:
        wait_for("shard 1's load age grows past 1 s", lambda: by_shard(
            check_groups(metrics(port), "the cluster"),
            "cart_shard_load_age_seconds").get(1, 0) > max(age, 1.0))
        # Shard 0's worker keeps reporting: its age stays under a few seconds
        ages = by_shard(check_groups(metrics(port), "the cluster"),
                        "cart_shard_load_age_seconds")
        check(ages.get(0, WAIT) < 3, f"the live shard's age stays low: {ages}")
    rc, rows = cartctl_stats(front_ep)
    check(rc == 3 and rows.get(1, [None] * 7)[1] == "NO"
          and rows[1][2:5] == ["-", "-", "-"] and re.fullmatch(r"\d+\.\ds", rows[1][6]),
          f"cartctl stats, shard 1 dead: {rc} {rows}")
    check(rows.get(0, [None] * 7)[1] == "yes" and rows[0][2].isdigit(),
          f"cartctl stats, shard 0: {rows.get(0)}")
    for program in reversed(Program.every):
        if program.popen.poll() is None:
            check(program.stop() == 0, f"{program.name} exits 0 on SIGTERM")


def main():
    if not shutil.which("promtool"):
        sys.exit("promtool is missing: run scripts/deps.sh (Debian's prometheus)")
    workdir = tempfile.mkdtemp(prefix="test_metrics.")
    try:
        test_cartd(workdir)
        test_cluster(workdir)
    finally:
        for program in Program.every:
            if program.popen.poll() is None:
                program.popen.kill()
                program.popen.wait()
    print(f"{checks - failures} passed, {failures} failed")
    if failures:
        print(f"programs' output kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failures else 0)


main()
