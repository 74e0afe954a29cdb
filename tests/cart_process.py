"""Starting cartd for the Python tests: on a free port of loopback, the
port read from its first line, within a bound."""

import re
import selectors
import subprocess
import sys

DEFAULT_ARGS = ("--in-memory", "--listen", "0", "--bus", "none", "--shards", "4")


def start_cartd(cartd, args=DEFAULT_ARGS, wait=30):
    """Starts cartd with args; returns (process, port), or exits the test
    when it prints no address within `wait` seconds."""
    proc = subprocess.Popen([cartd, *args], stdout=subprocess.PIPE, text=True)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=wait):
            proc.kill()
            sys.exit(f"cartd printed no address within {wait} s")
    line = proc.stdout.readline()
    found = re.match(r"cartd: http://127\.0\.0\.1:(\d+)/", line)
    if not found:
        proc.kill()
        sys.exit(f"cartd: unexpected first line {line!r}")
    return proc, int(found.group(1))
