"""The HTTP API's OpenAPI 3.1 description (http_front/openapi.json, as a
server's GET /openapi.json serves it) for the tests: find the operation a
request names, and check an answer against it. An answer is what the
description says when its status is listed for the operation, every
header the response marks required is there and matches its schema, and
its body has a listed media type and matches the schema (JSON Schema
2020-12, $refs resolved within the document).

Numbers are read as decimal.Decimal, from the document and from bodies
alike, so that multipleOf 0.01 is checked exactly (as floats, 19.99 is no
multiple of 0.01). Validators are made once per schema: checking a cart of
1,000 items takes milliseconds.

Uses Debian's python3-jsonschema (scripts/deps.sh): run under /usr/bin/python3.

    spec = cart_openapi.fetch(port)
    problems = spec.validate("GET", "/items/c", 200, headers, body)   # [] when valid
"""
import decimal
import http.client
import json
import re
import urllib.parse

import jsonschema

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def loads(text):
    """JSON with its non-integer numbers as Decimal."""
    return json.loads(text, parse_float=decimal.Decimal)


def fetch(port, host="127.0.0.1", timeout=10.0):
    """The Spec a server serves at GET /openapi.json; its own answer is
    checked against it too (raises ValueError when it is not as described)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/openapi.json")
        response = conn.getresponse()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    if response.status != 200:
        raise ValueError(f"GET /openapi.json: {response.status} {body[:200]!r}")
    spec = Spec(loads(body))
    problems = spec.validate("GET", "/openapi.json", response.status, headers, body)
    if problems:
        raise ValueError(f"GET /openapi.json is not as it describes itself: {problems}")
    return spec


def load_file(path):
    with open(path, "rb") as f:
        return Spec(loads(f.read()))


def _unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def _media_type(value):
    """(type/subtype, {param: value}) of a Content-Type, lowercased."""
    kind, *params = [part.strip() for part in value.split(";")]
    pairs = {}
    for param in params:
        name, _, val = param.partition("=")
        pairs[name.strip().lower()] = val.strip().strip('"')
    return kind.lower(), pairs


class Spec:
    """One OpenAPI document (numbers as Decimal)."""

    def __init__(self, doc):
        self.doc = doc
        self._validators = {}
        self._error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        self._templates = []        # (regex, template, [param names])
        for template in doc["paths"]:
            names = re.findall(r"\{([^}]+)\}", template)
            pattern = "".join(
                "([^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template) if part)
            self._templates.append((re.compile(pattern + r"\Z"), template, names))

    # --- the document ---------------------------------------------------------

    def resolve(self, node):
        """node, or what its local $ref points at (followed to the end)."""
        for _ in range(32):
            if not (isinstance(node, dict) and set(node) == {"$ref"}):
                return node
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"a $ref outside the document: {ref}")
            node = self.doc
            for token in ref[2:].split("/"):
                node = node[_unescape(token)]
        raise ValueError("a $ref loop")

    def operations(self):
        """(method, template, operation) of every operation with an operationId."""
        for template, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item and "operationId" in item[method]:
                    yield method, template, item[method]

    def operation(self, operation_id):
        """(method, template, operation) of an operationId."""
        for method, template, operation in self.operations():
            if operation["operationId"] == operation_id:
                return method, template, operation
        raise KeyError(f"no operation {operation_id} in the description")

    def path(self, operation_id, **params):
        """(METHOD, path) of an operation, its path parameters filled in
        (percent-encoded)."""
        method, template, _ = self.operation(operation_id)
        path = template
        for name, value in params.items():
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
        if "{" in path:
            raise KeyError(f"{operation_id}: parameters left in {path}")
        return method.upper(), path

    def allowed(self, template):
        """The methods of a path's operations, as an Allow header lists them."""
        item = self.doc["paths"][template]
        return [m.upper() for m in METHODS if m in item and "operationId" in item[m]]

    def parameters(self, template, method):
        """The parameters of an operation (the path's and its own), resolved."""
        item = self.doc["paths"][template]
        return [self.resolve(p) for p in
                item.get("parameters", []) + item[method].get("parameters", [])]

    def request_schema(self, operation_id, media="application/json"):
        _, _, operation = self.operation(operation_id)
        body = self.resolve(operation["requestBody"])
        return body["content"][media]["schema"]

    def match(self, method, target):
        """(template, operation or None, {param: decoded value}) of a request,
        or None when no path of the description has the target's shape."""
        path = target.split("?", 1)[0].split("#", 1)[0]
        for regex, template, names in self._templates:
            found = regex.match(path)
            if found:
                values = {n: urllib.parse.unquote(v) for n, v in zip(names, found.groups())}
                operation = self.doc["paths"][template].get(method.lower())
                return template, operation, values
        return None

    # --- schemas ----------------------------------------------------------------

    def schema_problems(self, schema, instance, where="body"):
        """What is wrong with instance under schema (a schema of this
        document), as a list of sentences."""
        key = id(schema)
        validator = self._validators.get(key)
        if validator is None:
            root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": self.doc.get("components", {}), "allOf": [schema]}
            validator = jsonschema.Draft202012Validator(
                root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            self._validators[key] = (validator, schema)   # keeps schema alive: id stays
        else:
            validator = validator[0]
        return [f"{where}{''.join(f'/{p}' for p in e.absolute_path)}: {e.message}"
                for e in validator.iter_errors(instance)]

    # --- answers ---------------------------------------------------------------

    def response(self, method, target, status):
        """The response object the description gives for an answer, or
        (None, why)."""
        matched = self.match(method, target)
        if matched is None:
            return None, f"{method} {target}: no such path in the description"
        template, operation, _ = matched
        if operation is None:
            return None, f"{method} {template}: no such operation in the description"
        responses = operation["responses"]
        code = str(status)
        for key in (code, code[0] + "XX"):
            if key in responses:
                return self.resolve(responses[key]), None
        return None, (f"{method} {template} ({operation.get('operationId', 'not allowed')})"
                      f": status {status} is not described (only {', '.join(responses)})")

    def validate(self, method, target, status, headers, body):
        """Problems with an answer (status, {lowercase name: value}, bytes
        body) to METHOD TARGET; [] when it is as described. A target that
        no path of the description has is to be 404, an error."""
        method = method.upper()
        if self.match(method, target) is None:
            if status != 404:
                return [f"{method} {target}: {status} to a path not described, not 404"]
            return self._body_problems({"content": self._error}, method,
                                       headers, body, f"{method} {target} 404")
        response, why = self.response(method, target, status)
        if response is None:
            return [why]
        where = f"{method} {target} {status}"
        problems = []
        for name, header in response.get("headers", {}).items():
            header = self.resolve(header)
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"{where}: no {name} header")
                continue
            if "schema" in header:
                problems += self.schema_problems(header["schema"], value,
                                                 f"{where}: header {name}")
        return problems + self._body_problems(response, method, headers, body, where)

    def _body_problems(self, response, method, headers, body, where):
        content = response.get("content")
        if not content or method == "HEAD":
            return [f"{where}: a body where none is described: {body[:80]!r}"] if (
                body and method != "HEAD") else []
        kind = headers.get("content-type")
        if kind is None:
            return [f"{where}: no Content-Type (described: {', '.join(content)})"]
        got_type, got_params = _media_type(kind)
        media = None
        for key, value in content.items():
            want_type, want_params = _media_type(key)
            if want_type == got_type and all(got_params.get(k) == v
                                             for k, v in want_params.items()):
                media = value
        if media is None:
            return [f"{where}: Content-Type {kind} (described: {', '.join(content)})"]
        schema = media.get("schema")
        if schema is None:
            return []
        if got_type == "application/json":
            try:
                instance = loads(body)
            except ValueError as error:
                return [f"{where}: the body is not JSON ({error}): {body[:80]!r}"]
        else:
            try:
                instance = body.decode("utf-8")
            except UnicodeDecodeError:
                return [f"{where}: the body is not UTF-8 text"]
        return self.schema_problems(schema, instance, f"{where}: body")
