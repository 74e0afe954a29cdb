#!/usr/bin/python3
"""http_front/openapi.json is valid OpenAPI 3.1, by validate-api
(@seriousme/openapi-schema-validator, from npm: the official 3.1 schema,
every $ref resolved), and holds together where that schema cannot see:
each path parameter is declared once and named in its path, operationIds
are unique, every method of every path is described (an operation, or a
405 with the Allow its path's operations make), each error's body says its
own status, each example matches its schema, and the request bodies accept
and refuse what the API does.

Usage: test_openapi_spec.py PATH/TO/validate-api PATH/TO/openapi.json"""
import json
import os
import subprocess
import sys

import cart_openapi

VALIDATE_API, SPEC_PATH = sys.argv[1], sys.argv[2]
failures = 0
checks = 0


def check(condition, what):
    global failures, checks
    checks += 1
    if not condition:
        failures += 1
        print("FAIL:", what)
    return condition


# 1. The validator
if not os.access(VALIDATE_API, os.X_OK):
    sys.exit(f"{VALIDATE_API} is missing: run scripts/deps.sh (it installs deps/npm)")
out = subprocess.run([VALIDATE_API, SPEC_PATH], capture_output=True, text=True, timeout=120)
verdict = None
try:
    verdict = json.loads(out.stdout)
except ValueError:
    pass
check(out.returncode == 0 and isinstance(verdict, dict) and verdict.get("valid") is True,
      f"validate-api: exit {out.returncode}: {out.stdout[:3000]} {out.stderr[:500]}")

spec = cart_openapi.load_file(SPEC_PATH)
doc = spec.doc
check(doc.get("openapi", "").startswith("3.1."), f"openapi is {doc.get('openapi')}")

# 2. Path parameters: each one of the template declared, once, and no other
for template, item in doc["paths"].items():
    named = set(part[1:-1] for part in template.split("/") if part.startswith("{"))
    for method in cart_openapi.METHODS:
        if method not in item:
            continue
        declared = [p["name"] for p in spec.parameters(template, method) if p["in"] == "path"]
        check(sorted(declared) == sorted(named),
              f"{method} {template}: path parameters {declared}, the path names {named}")
        check(all(p.get("required") for p in spec.parameters(template, method)
                  if p["in"] == "path"), f"{method} {template}: a path parameter not required")

# 3. operationIds unique
ids = [op["operationId"] for _, _, op in spec.operations()]
check(len(ids) == len(set(ids)), f"operationIds repeated: {ids}")

# 4. Every method of every path described; a method without an operation is
#    a 405 whose Allow lists the path's operations
for template, item in doc["paths"].items():
    allow = set(spec.allowed(template))
    for method in cart_openapi.METHODS:
        if not check(method in item, f"{method.upper()} {template} is not described"):
            continue
        if "operationId" in item[method]:
            continue
        responses = item[method]["responses"]
        check(list(responses) == ["405"],
              f"{method.upper()} {template}: not an operation, but answers {list(responses)}")
        header = spec.resolve(spec.resolve(responses["405"]).get("headers", {}).get("Allow", {}))
        listed = header.get("schema", {}).get("const", "")
        check(header.get("required") and set(listed.split(", ")) == allow,
              f"{method.upper()} {template}: 405 Allow '{listed}', the operations are {allow}")

# 5. Each error's body carries its own status: the body of status S with
#    status S passes, with another fails
for method, template, operation in spec.operations():
    for code, response in operation["responses"].items():
        response = spec.resolve(response)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if int(code) < 400 or code == "412":          # 412's body is the cart
            continue
        if not check(schema is not None, f"{method} {template} {code}: no JSON body"):
            continue
        good = {"error": {"status": int(code), "message": "m"}}
        bad = {"error": {"status": int(code) + 1, "message": "m"}}
        check(not spec.schema_problems(schema, good),
              f"{method} {template} {code}: its own error refused: "
              f"{spec.schema_problems(schema, good)}")
        check(spec.schema_problems(schema, bad),
              f"{method} {template} {code}: an error of status {int(code) + 1} passes")

# 6. Examples match their schemas
for name, schema in doc["components"]["schemas"].items():
    for example in schema.get("examples", []):
        check(not spec.schema_problems(schema, example),
              f"schema {name}: example {example} fails: {spec.schema_problems(schema, example)}")

# 7. The request bodies accept what the API accepts and refuse what it refuses
item = spec.request_schema("addItem")
D = cart_openapi.loads
for body, ok in [('{"offeredPrice": 19.99}', True),
                 ('{"offeredPrice": 0, "itemCount": 1000000, "specialSale": true, '
                  '"saleExpiration": "2026-12-01T00:00:00Z"}', True),
                 ('{"offeredPrice": 1e12, "unitCount": 2, "saleExpiration": null}', True),
                 ('{"offeredPrice": 1.005}', False), ('{"offeredPrice": -1}', False),
                 ('{"offeredPrice": 1000000000000.01}', False), ('{}', False),
                 ('{"offeredPrice": 1, "itemCount": 0}', False),
                 ('{"offeredPrice": 1, "itemCount": 1000001}', False),
                 ('{"offeredPrice": 1, "itemCount": 1, "unitCount": 1}', False),
                 ('{"offeredPrice": 1, "colour": "red"}', False),
                 ('{"offeredPrice": "1"}', False), ('{"offeredPrice": 1, "specialSale": 1}', False)]:
    problems = spec.schema_problems(item, D(body))
    check(not problems if ok else bool(problems),
          f"addItem body {body}: {'refused' if ok else 'accepted'} {problems}")
count = spec.request_schema("setCount")
for body, ok in [('{"newCount": 0}', True), ('{"newCount": 1000000}', True),
                 ('{"newCount": -1}', False), ('{"newCount": 1.5}', False), ('{}', False),
                 ('{"newCount": 1, "itemCount": 1}', False)]:
    problems = spec.schema_problems(count, D(body))
    check(not problems if ok else bool(problems),
          f"setCount body {body}: {'refused' if ok else 'accepted'} {problems}")
id_schema = doc["components"]["schemas"]["Id"]
for value, ok in [("jea-265", True), ("a" * 128, True), ("A.z_0~@:-", True),
                  ("a" * 129, False), ("", False), ("a/b", False), ("a b", False),
                  ("é", False)]:
    check(not spec.schema_problems(id_schema, value) if ok
          else bool(spec.schema_problems(id_schema, value)), f"Id {value!r}")

print(f"{checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
