#!/usr/bin/python3
"""A client written against /openapi.json alone: it starts cartd, reads the
description the server serves, and does every cart operation by the
operationIds, paths, fields and headers it finds there (add, merge-add,
list, set a count, set 0, remove, checkout; the older API's add), then the
errors (a bad id, an unknown field, the 404s, 405 with Allow, 415, 413, a
path not described), then versions (ETag, If-Match, If-None-Match: 304,
412) and retries (Idempotency-Key: a replay, 422 for another request, a
failed request run again). Every answer is checked against the description
(tests/cart_openapi.py), and every body sent against its request schema.

Each check is named by what it covers; the last line counts them.

Usage: test_openapi.py PATH/TO/cartd"""
import atexit
import http.client
import json
import re
import socket
import subprocess
import sys
import time

import cart_openapi
import cart_process

CARTD = sys.argv[1]
TIMEOUT = 10.0
failures = []
checks = 0


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print("FAIL:", what)
    return condition


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return cart_openapi.loads(self.body)
        except ValueError:
            return None

    @property
    def etag(self):
        return self.headers.get("etag")

    def __repr__(self):
        return f"{self.status} {self.headers} {self.body[:200]!r}"


def send(method, path, body=None, headers=None, raw=None, content_type="application/json"):
    """One request on a connection of its own; the answer, checked against
    the description (a failure counted for each way it is not)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=TIMEOUT)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    head = dict(headers or {})
    if data is not None and content_type:
        head["Content-Type"] = content_type
    try:
        conn.request(method, path, body=data, headers=head)
        response = conn.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                        response.read())
    finally:
        conn.close()
    problems = SPEC.validate(method, path, answer.status, answer.headers, answer.body)
    check(not problems, f"{method} {path}: not as described: {problems}")
    return answer


def call(operation_id, body=None, headers=None, **params):
    """An operation by its operationId; a body is first checked against the
    operation's request schema."""
    method, path = SPEC.path(operation_id, **params)
    if body is not None:
        problems = SPEC.schema_problems(SPEC.request_schema(operation_id),
                                        cart_openapi.loads(json.dumps(body)))
        check(not problems, f"{operation_id}: the body {body} is refused by its schema")
    return send(method, path, body, headers)


def wait_healthy():
    """Polls /healthz, with a deadline, until every shard is served."""
    until = time.monotonic() + 30
    while time.monotonic() < until:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    sys.exit("cartd never became healthy")


def field(operation_id, name):
    """name, once the operation's request schema has said it has that field."""
    schema = SPEC.resolve(SPEC.request_schema(operation_id))
    check(name in schema.get("properties", {}), f"{operation_id} has no field {name}")
    return name


def version(answer):
    """N of an ETag "N", or None."""
    found = re.fullmatch(r'"(\d+)"', answer.etag or "")
    return int(found.group(1)) if found else None


proc, PORT = cart_process.start_cartd(CARTD)
atexit.register(lambda: proc.poll() is None and proc.kill())   # even on an exception
try:
    wait_healthy()
    SPEC = cart_openapi.fetch(PORT)
except Exception:
    proc.kill()
    raise

PRICE, COUNT = field("addItem", "offeredPrice"), field("addItem", "itemCount")
SALE, EXPIRY = field("addItem", "specialSale"), field("addItem", "saleExpiration")
LEGACY_COUNT = field("addItem", "unitCount")
NEW_COUNT = field("setCount", "newCount")

# --- The cart's operations ------------------------------------------------------

got = call("listCart", customerId="alice")
check(got.status == 200 and got.json()["items"] == [], f"an unknown customer's cart: {got}")
got = call("addItem", {PRICE: 19.99, COUNT: 2}, customerId="alice", itemId="sku-1")
check(got.status == 201 and got.json()[COUNT] == 2, f"add a new item: {got}")
got = call("addItem", {PRICE: 18.5, COUNT: 3, SALE: True, EXPIRY: "2026-12-01T00:00:00Z"},
           customerId="alice", itemId="sku-1")
check(got.status == 200 and got.json()[COUNT] == 5
      and got.json()[PRICE] == cart_openapi.loads("18.50") and got.json()[SALE] is True,
      f"merge into the same item: counts added, price and sale replaced: {got}")
got = call("addItem", {PRICE: 1, LEGACY_COUNT: 4}, customerId="alice", itemId="sku-2")
check(got.status == 201 and got.json()[COUNT] == 4, f"add with the older unitCount: {got}")
got = call("listCart", customerId="alice")
cart = got.json() or {}
check(got.status == 200 and [i["itemId"] for i in cart.get("items", [])] == ["sku-1", "sku-2"]
      and cart.get("itemCount") == 9 and cart.get("total") == cart_openapi.loads("96.50"),
      f"list: items in the order first added, the count and the exact total: {got}")
got = call("setCount", {NEW_COUNT: 7}, customerId="alice", itemId="sku-2")
check(got.status == 200 and got.json()[COUNT] == 7, f"set a count: {got}")
got = call("setCount", {NEW_COUNT: 0}, customerId="alice", itemId="sku-2")
check(got.status == 204 and got.body == b"", f"set a count of 0 removes: {got}")
got = call("removeItem", customerId="alice", itemId="sku-1")
check(got.status == 204, f"remove an item: {got}")
got = call("listCart", customerId="alice")
check(got.status == 200 and got.json()["items"] == [], f"the cart after removals: {got}")
method, path = SPEC.path("addItemLegacy", customerId="bob", itemId="x")
check(SPEC.operation("addItemLegacy")[2].get("deprecated") is True, "the older path is deprecated")
got = send(method, path, {PRICE: 2.25})
check(got.status == 201 and got.json()[COUNT] == 1, f"add by the older path, count 1: {got}")
call("addItem", {PRICE: 0.75, COUNT: 2}, customerId="bob", itemId="y")
got = call("checkout", customerId="bob")
cart = got.json() or {}
check(got.status == 200 and cart.get("checkedOut") is True and cart.get("itemCount") == 3
      and cart.get("total") == cart_openapi.loads("3.75"), f"checkout: the final cart: {got}")
got = call("listCart", customerId="bob")
check(got.status == 200 and got.json()["items"] == [], f"the cart is gone after checkout: {got}")

# --- Errors ---------------------------------------------------------------------

for bad in ("a/b", "a b", "x" * 129, "é"):
    got = call("listCart", customerId=bad)
    check(got.status == 400, f"a bad customerId {bad[:20]!r}: {got}")
got = send(*SPEC.path("addItem", customerId="carol", itemId="i"), {PRICE: 1, "colour": "red"})
check(got.status == 400 and "colour" in got.json()["error"]["message"],
      f"an unknown field is 400 and named: {got}")
check(SPEC.schema_problems(SPEC.request_schema("addItem"), {PRICE: 1, "colour": "red"}),
      "the description refuses the unknown field too")
got = send(*SPEC.path("addItem", customerId="carol", itemId="i"), {PRICE: 1, COUNT: 1,
                                                                    LEGACY_COUNT: 1})
check(got.status == 400, f"itemCount and unitCount together: {got}")
got = call("setCount", {NEW_COUNT: 1}, customerId="carol", itemId="nothing")
check(got.status == 404, f"set the count of an item not in the cart: {got}")
got = call("removeItem", customerId="carol", itemId="nothing")
check(got.status == 404, f"remove an item not in the cart: {got}")
got = call("checkout", customerId="carol")
check(got.status == 404, f"check out no cart: {got}")
for template, item in SPEC.doc["paths"].items():
    allowed = set(SPEC.allowed(template))
    concrete = re.sub(r"\{[^}]+\}", "p", template)
    for method in cart_openapi.METHODS:
        if method.upper() in allowed:
            continue
        got = send(method.upper(), concrete)
        check(got.status == 405 and set(got.headers.get("allow", "").split(", ")) == allowed,
              f"{method.upper()} {concrete}: 405 with Allow {allowed}: {got}")
got = send(*SPEC.path("addItem", customerId="carol", itemId="i"), raw=b"offeredPrice=1",
           content_type="application/x-www-form-urlencoded")
check(got.status == 415, f"a form body: {got}")
got = send(*SPEC.path("addItem", customerId="carol", itemId="i"),
           raw=b'{"offeredPrice": 1, "pad": "' + b"x" * 16384 + b'"}')
check(got.status == 413, f"a body over 16 KiB: {got}")
for path in ("/items/carol/", "/nothing", "/items"):
    got = send("GET", path)
    check(got.status == 404, f"GET {path}, no such path: {got}")
got = call("listCart", customerId="carol")
check(got.status == 200 and got.json()["items"] == [], f"the refused requests changed nothing: {got}")

# --- Versions: ETag, If-Match, If-None-Match (the lead's work) -------------------

got = call("listCart", customerId="dave")
check(got.etag == '"0"', f"[etag] a customer with no cart: ETag \"0\": {got}")
got = call("addItem", {PRICE: 5}, headers={"If-Match": '"0"'}, customerId="dave", itemId="a")
check(got.status == 201 and version(got) is not None and version(got) > 0,
      f"[etag] If-Match \"0\" on an empty cart applies; a larger version: {got}")
v1 = version(got) or 0
got = call("listCart", customerId="dave")
check(version(got) == v1, f"[etag] the list has the write's version {v1}: {got}")
for tags in (f'"{v1}"', f'W/"{v1}"', f'"1000000000", "{v1}"', "*"):
    got = call("listCart", headers={"If-None-Match": tags}, customerId="dave")
    check(got.status == 304 and version(got) == v1 and got.body == b"",
          f"[etag] If-None-Match {tags} matches: 304, the ETag, no body: {got}")
got = call("listCart", headers={"If-None-Match": '"1000000000"'}, customerId="dave")
check(got.status == 200 and version(got) == v1, f"[etag] If-None-Match not matching: 200: {got}")
got = call("setCount", {NEW_COUNT: 3}, headers={"If-Match": f'"{v1}"'}, customerId="dave",
           itemId="a")
check(got.status == 200 and (version(got) or 0) > v1,
      f"[etag] If-Match the current version applies: {got}")
v2 = version(got) or 0
got = call("setCount", {NEW_COUNT: 9}, headers={"If-Match": f'"{v1}"'}, customerId="dave",
           itemId="a")
cart = got.json() if got.status == 412 else None
check(got.status == 412 and version(got) == v2 and cart and cart["items"][0][COUNT] == 3,
      f"[etag] If-Match an older version: 412, the current cart and its ETag: {got}")
got = call("addItem", {PRICE: 1}, headers={"If-Match": "*"}, customerId="erin", itemId="a")
check(got.status == 412 and version(got) == 0, f"[etag] If-Match * with no cart: 412: {got}")
for tags in (f'"{v2}", "{v1}"', f'W/"{v2}"'):
    got = call("removeItem", headers={"If-Match": tags}, customerId="dave", itemId="a")
    check(got.status == 400, f"[etag] If-Match {tags}: 400: {got}")
got = call("removeItem", headers={"If-Match": "*"}, customerId="dave", itemId="a")
check(got.status == 204 and version(got) == 0,
      f"[etag] If-Match * with a cart; its last item removed, the cart is gone: \"0\": {got}")
got = call("addItem", {PRICE: 1}, customerId="dave", itemId="b")
v3 = version(got) or 0
check(got.status == 201 and v3 > v2, f"[etag] a new cart never takes an old version: {got}")
got = call("checkout", customerId="dave")
check(got.status == 200 and version(got) == 0, f"[etag] checkout's ETag: \"0\", no cart: {got}")
v4 = version(got) or 0
got = call("addItem", {PRICE: 1}, customerId="dave", itemId="c")
check(got.status == 201 and (version(got) or 0) > v4,
      f"[etag] a version is not reused after a checkout: {got} after {v4}")

# --- Retries: Idempotency-Key (the lead's work) ----------------------------------

KEY = "k-8e03978e"
first = call("addItem", {PRICE: 2, COUNT: 2}, headers={"Idempotency-Key": KEY},
             customerId="fay", itemId="a")
check(first.status == 201 and "idempotent-replayed" not in first.headers,
      f"[idempotency] the first request: {first}")
again = call("addItem", {PRICE: 2, COUNT: 2}, headers={"Idempotency-Key": KEY},
             customerId="fay", itemId="a")
check(again.status == first.status and again.body == first.body and again.etag == first.etag
      and again.headers.get("idempotent-replayed") == "true",
      f"[idempotency] the retry gets the first answer, Idempotent-Replayed: true: {again}")
got = call("listCart", customerId="fay")
check(got.status == 200 and got.json()["itemCount"] == 2, f"[idempotency] applied once: {got}")
got = call("addItem", {PRICE: 2, COUNT: 3}, headers={"Idempotency-Key": KEY},
           customerId="fay", itemId="a")
check(got.status == 422, f"[idempotency] the same key, another body: 422: {got}")
got = call("setCount", {NEW_COUNT: 1}, headers={"Idempotency-Key": KEY}, customerId="fay",
           itemId="a")
check(got.status == 422, f"[idempotency] the same key, another method: 422: {got}")
got = call("addItem", {PRICE: 2, COUNT: 2}, headers={"Idempotency-Key": KEY},
           customerId="fay", itemId="b")
check(got.status == 422, f"[idempotency] the same key, another item: 422: {got}")
first = call("removeItem", headers={"Idempotency-Key": '"k-quoted"'}, customerId="fay",
             itemId="a")
again = call("removeItem", headers={"Idempotency-Key": "k-quoted"}, customerId="fay",
             itemId="a")
check(first.status == 204 and again.status == 204 and again.etag == first.etag
      and again.headers.get("idempotent-replayed") == "true",
      f"[idempotency] a key in quotes is the same key: {first} then {again}")
got = call("removeItem", headers={"Idempotency-Key": "k-failed"}, customerId="fay", itemId="z")
check(got.status == 404, f"[idempotency] a request that fails: {got}")
call("addItem", {PRICE: 1}, customerId="fay", itemId="z")
got = call("removeItem", headers={"Idempotency-Key": "k-failed"}, customerId="fay", itemId="z")
check(got.status == 204 and "idempotent-replayed" not in got.headers,
      f"[idempotency] a failed request is not remembered: its retry runs: {got}")
call("addItem", {PRICE: 1}, customerId="fay", itemId="c")  # the cart is empty by now
first = call("checkout", headers={"Idempotency-Key": "k-checkout"}, customerId="fay")
again = call("checkout", headers={"Idempotency-Key": "k-checkout"}, customerId="fay")
check(first.status == 200 and again.status == 200 and again.body == first.body
      and again.headers.get("idempotent-replayed") == "true",
      f"[idempotency] a checkout retried: the same final cart: {first} then {again}")
for key in ("", "x" * 256, "a b", '""'):
    got = call("addItem", {PRICE: 1}, headers={"Idempotency-Key": key}, customerId="fay",
               itemId="q")
    check(got.status == 400, f"[idempotency] the key {key[:20]!r}: 400: {got}")

proc.terminate()
try:
    check(proc.wait(timeout=30) == 0, f"cartd exits {proc.returncode} on SIGTERM")
except subprocess.TimeoutExpired:
    proc.kill()
    check(False, "cartd did not stop within 30 s of SIGTERM")

pending = [f for f in failures if "[etag]" in f or "[idempotency]" in f]
print(f"{len(pending)} of the failures name [etag] or [idempotency] (the lead's work)")
print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
