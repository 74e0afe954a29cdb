#!/usr/bin/env python3
"""cartctl against independent computations in Python: hash_key with
hashlib, the owning shard with the published jump consistent hash, and the
command line's errors. Usage: test_cartctl.py PATH/TO/cartctl"""
import random
import subprocess
import sys

from cart_shards import hash_key, jump

CARTCTL = sys.argv[1]
failures = 0


def run(*args):
    return subprocess.run([CARTCTL, *args], capture_output=True, text=True)


def check(condition, what):
    global failures
    if not condition:
        failures += 1
        print("FAIL:", what)


rng = random.Random(20261125)
alphabet = "abcXYZ019._~@:-" + "éüß日本語🛒"
keys = ["jea-265", "", "x" * 128, "-starts-with-dash"]
keys += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
         for _ in range(200)]
for key in keys:
    shards = rng.choice([1, 2, 3, 10, 16, 100, 1000, 9999, 10000])
    out = run("hash", "--shards", str(shards), "--", key)
    lines = out.stdout.splitlines()
    want = hash_key(key)
    check(out.returncode == 0 and lines[:1] == [str(want)],
          f"hash {key!r}: {out.stdout!r} {out.stderr!r}, want {want}")
    want_shard = jump(want, shards)
    check(lines[1:2] == [f"shard {want_shard} of {shards}"],
          f"shard of {key!r} over {shards}: {lines[1:2]}, want {want_shard}")

check(run("hash", "jea-265").stdout == "938870058641657986\n", "the API's example")
check(run("--help").returncode == 0, "--help exits 0")
check(run("hash", "--help").returncode == 0, "hash --help exits 0")
for bad in (["hash"], ["hash", "a", "b"], ["hash", "--shards", "0", "k"],
            ["hash", "--shards", "10001", "k"], ["hash", "--shards", "x", "k"],
            ["nosuch"], []):
    out = run(*bad)
    check(out.returncode == 2 and out.stderr, f"{bad} is a usage error: {out}")
version = run("--version")
check(version.returncode == 0 and version.stdout.startswith("cartctl (cart) "),
      f"--version: {version}")
for bad in (["stats", "--wait", "x"], ["stats", "--wait", "-1"],
            ["stats", "--shard", " 1"], ["ping", "--shard", "1"],
            ["keygen", "--dir", "/tmp", "-x"]):
    out = run(*bad)
    check(out.returncode == 2 and out.stderr, f"{bad} is a usage error: {out}")
# No broker on this port: --wait 1 asks again for a second, then gives up
out = run("stats", "--broker", "tcp://127.0.0.1:9", "--timeout", "100", "--wait", "1")
check(out.returncode == 1 and "waiting up to 1 s" in out.stderr,
      f"stats --wait with no broker: {out}")

total = len(keys) * 2 + 3 + 7 + 1 + 5 + 1
print(f"{total - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
