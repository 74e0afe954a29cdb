#!/usr/bin/env python3
"""docker-compose.yml's cluster run without Docker, each service in a
network namespace of its own with its own address on a bridge (the bridge
in a namespace of its own, a veth pair to each), started with the compose
file's own commands and environment, in its depends_on order and
conditions (its health checks run as compose would run them), CURVE on
with the keys its keys service makes. Its programs are the build's (the
image's PATH mapped to BIN_DIR), its volumes folders of a temporary one,
and its names resolve through /etc/netns/NS/hosts.

Through curl from a client namespace: every cart operation of the HTTP API
on every shard; a client without keys is kept out; one worker's link cut
makes its shard alone answer 503, fast, while the others serve, and the
link restored brings the shard back with its carts; a worker stopped with
SIGTERM and started again keeps its carts; a second run of the keys
service changes no key; every program stops cleanly on SIGTERM within the
compose file's stop_grace_period.

Usage: test_netns.py BIN_DIR [--file COMPOSE_FILE]. Run as root; exits 77
(skipped) where network namespaces cannot be made."""
import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import cart_compose

SKIP = 77
BUDGET = 90          # seconds for the whole test, set-up and clean-up aside
SUBNET = "10.77.0"    # only inside this test's namespaces: no clash outside
PREFIX = f"cartns{os.getpid()}"
CLIENT = "client"     # the namespace curl runs in, beside the services
T0 = time.monotonic()
END = T0 + BUDGET


class Failure(Exception):
    pass


def log(message):
    print(f"[{time.monotonic() - T0:6.2f}s] {message}", flush=True)


def sh(*args, check=True, timeout=10):
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise Failure(f"{' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    return out


def wait_for(what, predicate, timeout, interval=0.05):
    """PREDICATE's first true value, polled until TIMEOUT seconds have
    passed (or the test's budget is spent)."""
    deadline = min(time.monotonic() + timeout, END)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


passed = 0


def expect(condition, what):
    global passed
    if not condition:
        raise Failure(what)
    passed += 1


# --- the network -------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """In a child before exec: SIGKILL when this test dies, however it dies."""
    _libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


class Net:
    """A bridge in a namespace of its own, and a namespace per host with a
    veth pair to it: eth0 in the host's namespace, p-HOST in the bridge's."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.bridge = f"{prefix}-bridge"
        self.made = []          # namespaces, in the order made
        self.etc = []           # /etc/netns/NS folders made
        self.made_etc_netns = False
        self.address = {}

    def ns(self, host):
        return f"{self.prefix}-{host}"

    @staticmethod
    def port(host):
        return f"p-{host}"[:15]

    def add_ns(self, ns):
        sh("ip", "netns", "add", ns)
        self.made.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def up(self, hosts):
        self.add_ns(self.bridge)
        sh("ip", "-n", self.bridge, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.bridge, "link", "set", "br0", "up")
        for i, host in enumerate(hosts):
            ns = self.ns(host)
            self.add_ns(ns)
            sh("ip", "link", "add", "eth0", "netns", ns, "type", "veth",
               "peer", "name", self.port(host), "netns", self.bridge)
            sh("ip", "-n", self.bridge, "link", "set", self.port(host), "master", "br0", "up")
            self.address[host] = f"{SUBNET}.{i + 2}"
            sh("ip", "-n", ns, "addr", "add", f"{self.address[host]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        hosts_file = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        hosts_file += "".join(f"{a}\t{h}\n" for h, a in self.address.items())
        if not os.path.isdir("/etc/netns"):
            os.makedirs("/etc/netns")
            self.made_etc_netns = True
        for host in hosts:
            folder = os.path.join("/etc/netns", self.ns(host))
            os.makedirs(folder)
            self.etc.append(folder)
            with open(os.path.join(folder, "hosts"), "w") as f:
                f.write(hosts_file)

    def link(self, host, state):
        """The host's port on the bridge up or down: its cable in or out."""
        sh("ip", "-n", self.bridge, "link", "set", self.port(host), state)

    def down(self):
        """Every namespace (their veths and the bridge go with them) and
        /etc/netns entry made; safe to call again."""
        while self.made:
            sh("ip", "netns", "del", self.made.pop(), check=False)
        while self.etc:
            shutil.rmtree(self.etc.pop(), ignore_errors=True)
        if self.made_etc_netns:
            try:
                os.rmdir("/etc/netns")
            except OSError:
                pass
            self.made_etc_netns = False


def remove_stale():
    """What an earlier run killed before its clean-up (SIGKILL) left: its
    namespaces, /etc/netns entries and temporary folder, its pid gone.
    Its processes died with it (die_with_parent)."""
    listed = [line.split()[0] for line in
              sh("ip", "netns", "list", check=False).stdout.splitlines() if line.strip()]
    names = set(listed) | set(os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else [])
    removed = False
    for name in names:
        m = re.match(r"cartns(\d+)-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh("ip", "netns", "del", name, check=False)
            shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)
            removed = True
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        m = re.match(r"test_netns\.(\d+)\.", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
    if removed:
        try:
            os.rmdir("/etc/netns")  # only when empty: another's entries stay
        except OSError:
            pass


# --- the services ----------------------------------------------------------

class Cluster:
    """The compose file's services as processes, each in its namespace."""

    def __init__(self, services, image, net, tmp):
        self.services = services
        self.image = image
        self.net = net
        self.tmp = tmp
        self.procs = {}
        self.order = []         # services in the order started
        self.cartctl = image.resolve("cartctl")[0]
        self.http = None        # a Client, once the front is known

    def volume_dir(self, volume):
        if volume.startswith(("/", ".")):
            return os.path.join(cart_compose.REPO, volume)
        path = os.path.join(self.tmp, "volumes", volume)
        os.makedirs(path, exist_ok=True)
        return path

    def mapped(self, name, value):
        mounts = cart_compose.mounts(self.services[name])
        return cart_compose.map_mounts(value, mounts, self.volume_dir)

    def argv(self, name, args):
        """ARGS of service NAME as run here: the program where the image's
        PATH finds it, volume paths in their folders."""
        found = self.image.resolve(args[0])
        if not found:
            raise Failure(f"{name}: no program {args[0]} (test_compose checks that)")
        return [found[0]] + [self.mapped(name, a) for a in args[1:]]

    def env(self, name):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CART_")}
        dirs = [self.image.host_dir(d)[0] for d in self.image.path]
        env["PATH"] = ":".join(dict.fromkeys(dirs))
        for k, v in cart_compose.environment(self.services[name]).items():
            env[k] = self.mapped(name, v)
        return env

    def in_ns(self, name, args):
        return ["ip", "netns", "exec", self.net.ns(name)] + self.argv(name, args)

    def start(self, name):
        work = os.path.join(self.tmp, "work", name)
        os.makedirs(work, exist_ok=True)
        logf = open(os.path.join(self.tmp, f"{name}.log"), "a")
        self.procs[name] = subprocess.Popen(
            self.in_ns(name, cart_compose.command(self.services[name])),
            env=self.env(name), cwd=work, stdin=subprocess.DEVNULL, stdout=logf,
            stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        logf.close()
        if name not in self.order:
            self.order.append(name)
        log(f"started {name} (pid {self.procs[name].pid})")

    def healthy(self, name):
        """Whether the service's health check passes now, as compose runs
        it: in the service's namespace, within its timeout."""
        check = self.services[name].get("healthcheck", {})
        test = cart_compose.health_test(self.services[name])
        if test is None:
            return self.running(name)
        timeout = cart_compose.seconds(check.get("timeout"), 30)
        try:
            out = subprocess.run(self.in_ns(name, test), env=self.env(name),
                                 capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return out.returncode == 0

    def wait_healthy(self, name, timeout=20):
        def check():
            if not self.running(name):
                raise Failure(f"{name} exited {self.procs[name].poll()} before it was healthy")
            return self.healthy(name)
        wait_for(f"{name} to be healthy", check, timeout, interval=0.2)

    def running(self, name):
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def grace(self, name):
        return cart_compose.seconds(self.services[name].get("stop_grace_period"), 10)

    def wait_condition(self, dep, condition):
        what = f"{dep} to be {condition.replace('service_', '')}"
        if condition == "service_completed_successfully":
            def done():
                code = self.procs[dep].poll()
                if code not in (None, 0):
                    raise Failure(f"{dep} exited {code}")
                return code == 0
            wait_for(what, done, 20)
        elif condition == "service_healthy":
            self.wait_healthy(dep)
        else:
            expect(self.running(dep), f"{dep} is running")

    def up(self):
        """Every service, each once its dependencies meet their conditions."""
        started = set()
        pending = list(self.services)
        while pending:
            ready = [n for n in pending
                     if set(cart_compose.depends_on(self.services[n])) <= started]
            if not ready:
                raise Failure(f"depends_on has a cycle among {pending}")
            for name in ready:
                for dep, condition in cart_compose.depends_on(self.services[name]).items():
                    self.wait_condition(dep, condition)
                self.start(name)
                started.add(name)
                pending.remove(name)

    def stop(self, name):
        """SIGTERM, as docker stop sends; (exit code, seconds to stop)."""
        proc = self.procs[name]
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=min(self.grace(name), max(1, END - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, time.monotonic() - t
        return code, time.monotonic() - t

    def kill_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self):
        for name in self.order:
            path = os.path.join(self.tmp, f"{name}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    lines = f.readlines()[-40:]
                print(f"--- {name}'s output (last {len(lines)} lines)")
                sys.stdout.writelines(lines)


# --- the HTTP API, over curl from the client namespace ----------------------

class Response:
    def __init__(self, status, headers, body, seconds):
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return f"{self.status} in {self.seconds * 1000:.0f} ms: {self.body[:300]!r}"


class Client:
    def __init__(self, net, host, port):
        self.ns = net.ns(CLIENT)
        self.base = f"http://{host}:{port}"

    def __call__(self, method, path, body=None):
        args = ["ip", "netns", "exec", self.ns, "curl", "--silent", "--show-error",
                "--include", "--noproxy", "*", "--max-time", "10", "--request", method,
                "--write-out", "\n%{http_code} %{time_total}"]
        if body is not None:
            args += ["--header", "Content-Type: application/json",
                     "--data-binary", body if isinstance(body, str) else json.dumps(body)]
        out = subprocess.run(args + [self.base + path], capture_output=True, text=True,
                             timeout=15)
        text, _, last = out.stdout.rpartition("\n")
        if out.returncode != 0 or not re.fullmatch(r"\d+ [\d.]+", last):
            return Response(0, {}, out.stderr.strip(), 0.0)
        status, seconds = last.split()
        head, _, content = text.partition("\n\n")   # text mode: \r\n read as \n
        headers = {}
        for line in head.split("\n")[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Response(int(status), headers, content, float(seconds))


def shard_states(http):
    r = http("GET", "/healthz")
    body = r.json() or {}
    return {s["shard"]: s["state"] for s in body.get("shards", [])}


def owners(cartctl, shards, per_shard):
    """PER_SHARD customers of each shard, by cartctl hash."""
    found = {k: [] for k in range(shards)}
    for i in range(100 * shards * per_shard):
        if all(len(v) >= per_shard for v in found.values()):
            return found
        key = f"netns-{i}"
        line = sh(cartctl, "hash", "--shards", str(shards), key).stdout.splitlines()[1]
        k = int(re.match(r"shard (\d+) of", line).group(1))
        if len(found[k]) < per_shard:
            found[k].append(key)
    raise Failure(f"no {per_shard} customers a shard among the keys tried")


def items(cart):
    return [(i["itemId"], i["itemCount"]) for i in (cart or {}).get("items", [])]


def fill(http, customer):
    """A cart through every way of adding and changing an item; its items."""
    r = http("POST", f"/item/{customer}/i1", {"offeredPrice": 19.99, "itemCount": 2})
    expect(r.status == 201 and r.json()["itemCount"] == 2 and r.json()["offeredPrice"] == 19.99,
           f"POST new item for {customer}: {r}")
    r = http("POST", f"/item/{customer}/i1", {"offeredPrice": 20, "itemCount": 1,
                                              "specialSale": True,
                                              "saleExpiration": "2026-12-01T00:00:00Z"})
    expect(r.status == 200 and r.json()["itemCount"] == 3 and r.json()["specialSale"] is True
           and r.json()["saleExpiration"] == "2026-12-01T00:00:00Z",
           f"POST merged into the item for {customer}: {r}")
    r = http("POST", f"/items/{customer}/i2", {"unitCount": 6, "offeredPrice": 50})
    expect(r.status == 201 and r.json()["itemCount"] == 6,
           f"POST /items/ (the older API, unitCount) for {customer}: {r}")
    r = http("PUT", f"/item/{customer}/i2", {"newCount": 4})
    expect(r.status == 200 and r.json()["itemCount"] == 4, f"PUT newCount for {customer}: {r}")
    r = http("GET", f"/items/{customer}")
    cart = r.json()
    expect(r.status == 200 and items(cart) == [("i1", 3), ("i2", 4)]
           and cart["itemCount"] == 7 and cart["total"] == 260.0
           and cart["customerId"] == customer, f"GET the cart of {customer}: {r}")
    return items(cart)


def lifecycle(http, customer):
    """Removing items and checking out."""
    r = http("POST", f"/item/{customer}/a", {"offeredPrice": 1.5})
    expect(r.status == 201 and r.json()["itemCount"] == 1, f"POST for {customer}: {r}")
    r = http("PUT", f"/item/{customer}/a", {"newCount": 0})
    expect(r.status == 204, f"PUT newCount 0 removes the item of {customer}: {r}")
    r = http("GET", f"/items/{customer}")
    expect(r.status == 200 and items(r.json()) == [], f"an empty cart for {customer}: {r}")
    for item in ("a", "b"):
        r = http("POST", f"/item/{customer}/{item}", {"offeredPrice": 2.25, "itemCount": 2})
        expect(r.status == 201, f"POST {item} for {customer}: {r}")
    r = http("DELETE", f"/item/{customer}/a")
    expect(r.status == 204, f"DELETE an item of {customer}: {r}")
    r = http("DELETE", f"/item/{customer}/a")
    expect(r.status == 404, f"DELETE an item {customer} no longer has: {r}")
    r = http("PUT", f"/item/{customer}/a", {"newCount": 3})
    expect(r.status == 404, f"PUT an item {customer} no longer has: {r}")
    r = http("DELETE", f"/items/{customer}")
    cart = r.json()
    expect(r.status == 200 and cart.get("checkedOut") is True and items(cart) == [("b", 2)]
           and cart["total"] == 4.5, f"checkout of {customer}: {r}")
    r = http("GET", f"/items/{customer}")
    expect(r.status == 200 and items(r.json()) == [] and r.json()["itemCount"] == 0,
           f"the cart of {customer} is gone after checkout: {r}")
    r = http("DELETE", f"/items/{customer}")
    expect(r.status == 404, f"a second checkout of {customer}: {r}")


# --- the test ------------------------------------------------------------------

def program_default(image, program, option):
    """An option's default, as the program's --help states it."""
    found = image.resolve(program)
    text = sh(found[0], "--help").stdout if found else ""
    m = re.search(re.escape(option) + r" \S+.*?\(default (\d+)", text)
    if not m:
        raise Failure(f"{program} --help states no default for {option}")
    return int(m.group(1))


def service_of(services, program):
    return [n for n, s in services.items()
            if os.path.basename(cart_compose.command(s)[0]) == program]


class Topology:
    """Who is who in the compose file: the keys, broker, workers (by
    shard) and HTTP front, the shard count, the front's deadline and port."""

    def __init__(self, services, image):
        self.broker = service_of(services, "broker")[0]
        self.front = service_of(services, "http_front")[0]
        self.keys = sorted({d for s in services.values()
                            for d, c in cart_compose.depends_on(s).items()
                            if c == "service_completed_successfully"})
        self.keys_volume = cart_compose.mounts(services[self.keys[0]])[0][0]
        self.worker = {int(cart_compose.setting(services[n], "--shard")): n
                       for n in service_of(services, "shard_worker")}
        self.shards = int(cart_compose.setting(services[self.broker], "--shards")
                          or program_default(image, "broker", "--shards"))
        deadline_ms = int(cart_compose.setting(services[self.front], "--deadline")
                          or program_default(image, "http_front", "--deadline"))
        self.fast = deadline_ms / 1000 / 4     # "well under the deadline"
        self.port = cart_compose.published_target(services[self.front])
        self.front_broker = cart_compose.setting(services[self.front], "--broker")


def check_up(cluster, top):
    """Every service up in depends_on order, then healthy; CURVE on."""
    expect(sorted(top.worker) == list(range(top.shards)), f"one worker a shard: {top.worker}")
    cluster.up()
    for name in cluster.services:
        if name not in top.keys:
            cluster.wait_healthy(name)
    log("every service is healthy")
    # The front answers HTTP (its health) before its link to the broker is
    # up: /healthz is 200 once it is, with every shard live
    t = time.monotonic()
    r = wait_for("/healthz to be 200", lambda: (lambda r: r if r.status == 200 else None)(
        cluster.http("GET", "/healthz")), 10)
    expect((r.json() or {}).get("live") == top.shards, f"/healthz: {r}")
    log(f"/healthz 200, every shard live, {(time.monotonic() - t) * 1000:.0f} ms later")
    keys = snapshot(cluster.volume_dir(top.keys_volume))
    expect(any(f.endswith("broker.key_secret") for f in keys), f"keys made: {list(keys)}")
    # a client without keys gets no answer from the broker
    out = subprocess.run(["ip", "netns", "exec", cluster.net.ns(CLIENT), cluster.cartctl,
                          "ping", "--broker", top.front_broker, "--timeout", "500"],
                         capture_output=True, text=True, timeout=10)
    expect(out.returncode != 0, f"cartctl ping without keys must fail: {out.stdout}")
    return keys


def check_api(cluster, top, customers):
    """Every cart operation on each shard; the carts kept, by shard."""
    http = cluster.http
    carts = {}
    for k in range(top.shards):
        carts[k] = fill(http, customers[k][0])
        lifecycle(http, customers[k][1])
    r = http("POST", f"/item/{customers[0][0]}/x", "{not json")
    expect(r.status == 400 and "error" in (r.json() or {}), f"malformed JSON is 400: {r}")
    r = http("GET", "/metrics")
    expect(r.status == 200 and "# TYPE" in r.body, f"/metrics: {r}")
    log(f"every cart operation on each of the {top.shards} shards")
    return carts


def wait_shard_down(cluster, shard):
    t = time.monotonic()
    wait_for(f"shard {shard} to be seen down",
             lambda: shard_states(cluster.http).get(shard) not in (None, "live"), 10)
    return time.monotonic() - t


def check_link_cut(cluster, top, customers, carts):
    """One worker's link cut: its shard alone answers 503, well within the
    deadline; the link restored, the shard is back with its carts."""
    http, cut = cluster.http, 1 % top.shards
    name = top.worker[cut]
    cluster.net.link(name, "down")
    log(f"link of {name} cut: shard {cut} seen down in "
        f"{wait_shard_down(cluster, cut) * 1000:.0f} ms")
    for method, path, body in (("GET", f"/items/{customers[cut][0]}", None),
                               ("POST", f"/item/{customers[cut][0]}/new", {"offeredPrice": 1})):
        r = http(method, path, body)
        expect(r.status == 503 and r.headers.get("retry-after") and r.seconds < top.fast,
               f"{method} on the cut shard: 503 with Retry-After within {top.fast} s: {r}")
        log(f"{method} on the cut shard: 503 in {r.seconds * 1000:.1f} ms")
    for k in range(top.shards):
        if k != cut:
            r = http("GET", f"/items/{customers[k][0]}")
            expect(r.status == 200 and items(r.json()) == carts[k],
                   f"shard {k} serves while shard {cut} is cut: {r}")
    cluster.net.link(name, "up")
    t = time.monotonic()
    cluster.wait_healthy(name)
    log(f"link restored: shard {cut} back in {(time.monotonic() - t) * 1000:.0f} ms")
    r = http("GET", f"/items/{customers[cut][0]}")
    expect(r.status == 200 and items(r.json()) == carts[cut],
           f"shard {cut} back with its carts: {r}")
    expect(cluster.running(name), f"{name} kept running through the cut")


def check_restart(cluster, top, customers, carts):
    """A worker stopped (SIGTERM) and started again by the same command
    keeps its carts, a write just before the stop too."""
    http, again = cluster.http, 2 % top.shards
    name, customer = top.worker[again], customers[again][0]
    r = http("POST", f"/item/{customer}/i3", {"offeredPrice": 3, "itemCount": 5})
    expect(r.status == 201, f"POST just before the stop: {r}")
    carts[again] = carts[again] + [("i3", 5)]
    stop_cleanly(cluster, name)
    wait_shard_down(cluster, again)
    r = http("GET", f"/items/{customer}")
    expect(r.status == 503 and r.seconds < top.fast, f"the stopped worker's shard: {r}")
    cluster.start(name)
    cluster.wait_healthy(name)
    r = http("GET", f"/items/{customer}")
    expect(r.status == 200 and items(r.json()) == carts[again],
           f"{name} restarted with its carts: {r}")
    log(f"{name} restarted with its carts")


def check_keys_again(cluster, top, keys):
    """The keys service run again (every docker compose up runs it)
    changes no key."""
    for name in top.keys:
        cluster.start(name)
        cluster.wait_condition(name, "service_completed_successfully")
    expect(snapshot(cluster.volume_dir(top.keys_volume)) == keys, "a second keys run changed keys")


def stop_cleanly(cluster, name):
    code, took = cluster.stop(name)
    expect(code == 0 and took < cluster.grace(name),
           f"{name} stops on SIGTERM with 0 within its stop_grace_period: "
           f"exit {code} in {took:.1f} s")
    log(f"{name} stopped in {took * 1000:.0f} ms")


def check_down(cluster):
    """docker compose down: SIGTERM, the last started first."""
    for name in reversed(cluster.order):
        if cluster.running(name):
            stop_cleanly(cluster, name)


def scenario(cluster, image):
    top = Topology(cluster.services, image)
    cluster.http = Client(cluster.net, top.front, top.port)
    keys = check_up(cluster, top)
    customers = owners(cluster.cartctl, top.shards, 2)
    carts = check_api(cluster, top, customers)
    check_link_cut(cluster, top, customers, carts)
    check_restart(cluster, top, customers, carts)
    check_keys_again(cluster, top, keys)
    check_down(cluster)


def snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = (fh.read(), os.stat(path).st_mode)
    return out


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--file", default=cart_compose.COMPOSE_FILE)
    args = parser.parse_args()
    if os.geteuid() != 0:
        skip("network namespaces need root")
    if not shutil.which("ip"):
        skip("no ip command (iproute2; scripts/deps.sh installs it)")
    remove_stale()
    probe = f"{PREFIX}-probe"
    out = sh("ip", "netns", "add", probe, check=False)
    if out.returncode != 0:
        skip(f"ip netns add fails here: {out.stderr.strip()}")
    sh("ip", "netns", "del", probe, check=False)

    services = cart_compose.load(args.file)
    if CLIENT in services:
        raise SystemExit(f"a service is named {CLIENT}: rename the test's client")
    image = cart_compose.Image(args.bin_dir)
    tmp = tempfile.mkdtemp(prefix=f"test_netns.{os.getpid()}.")
    net = Net(PREFIX)
    cluster = Cluster(services, image, net, tmp)
    cleaned = []

    def clean_up():
        if cleaned:
            return
        cleaned.append(True)
        cluster.kill_all()
        net.down()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(clean_up)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(f"stopped by signal {s}: cleaning up"))
    try:
        net.up(list(services) + [CLIENT])
        log(f"{len(services) + 1} namespaces on a bridge, {SUBNET}.0/24")
        scenario(cluster, image)
        print(f"{passed} passed, 0 failed")
        return 0
    except Exception as e:   # a Failure, or a bug of the test's: both logged
        print(f"FAIL: {type(e).__name__ + ': ' if not isinstance(e, Failure) else ''}{e}")
        cluster.logs()
        print(f"{passed} passed, 1 failed")
        return 1
    finally:
        clean_up()


if __name__ == "__main__":
    sys.exit(main())
