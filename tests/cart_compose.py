"""docker-compose.yml and the Dockerfile read as the tests need them: each
service's command, health check, CART_* variables and volumes, and where a
program of the image is on this machine. Shared by test_compose.py (which
checks the commands against the programs' --help) and test_netns.py (which
runs them), so that neither keeps a copy of the topology.

Needs Debian's python3-yaml (scripts/deps.sh)."""
import json
import os
import re
import shlex

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE_FILE = os.path.join(REPO, "docker-compose.yml")
DOCKERFILE = os.path.join(REPO, "Dockerfile")
# debian:12's own PATH, which the Dockerfile's ENV PATH extends
DEBIAN_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]


def load(path=COMPOSE_FILE):
    """The compose file's services, anchors and merge keys resolved (each
    service's values its own, none shared with another's through an alias)."""
    with open(path) as f:
        return json.loads(json.dumps(yaml.safe_load(f)["services"]))


def argv(value):
    """A command in either of compose's forms, as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def command(service):
    return argv(service.get("command"))


def health_test(service):
    """A health check's command without its CMD word; None when the service
    has none. A CMD-SHELL check raises: only the exec form can be checked."""
    test = service.get("healthcheck", {}).get("test")
    if test is None:
        return None
    test = argv(test)
    if not test or test[0] != "CMD":
        raise ValueError(f"healthcheck.test must be [\"CMD\", ...]: {test}")
    return test[1:]


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts(service):
    """(volume, target) of each of the service's volumes."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v["source"], v["target"]))
        else:
            out.append(tuple(v.split(":")[:2]))
    return out


def depends_on(service):
    """{service: condition}"""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}


def option_of_variable(name):
    """CART_DATA_DIR -> --data-dir; None for a variable not of the CART_ kind."""
    if not name.startswith("CART_"):
        return None
    return "--" + name[len("CART_"):].lower().replace("_", "-")


class Image:
    """The image's WORKDIR and PATH, from the Dockerfile, and where each
    program it runs is on this machine: the build's own in BIN_DIR (the
    image's WORKDIR/build/bin), the repo's scripts in the repo, anything
    else in the same folder here as in the image (a Debian package's)."""

    def __init__(self, bin_dir, dockerfile=DOCKERFILE):
        with open(dockerfile) as f:
            text = f.read()
        workdir = re.findall(r"^WORKDIR\s+(\S+)", text, re.M)
        path = re.findall(r"^ENV\s+PATH=(\S+)", text, re.M)
        if not workdir or not path:
            raise ValueError(f"{dockerfile}: no WORKDIR or ENV PATH=")
        self.workdir = workdir[-1]
        self.path = [p for p in path[-1].split(":") if p != "$PATH"]
        self.path += DEBIAN_PATH
        self.cmd = re.findall(r"^CMD\s+(\[.*\])", text, re.M)
        self.bin_dir = os.path.abspath(bin_dir)

    def host_dir(self, image_dir):
        """This machine's folder for one of the image's."""
        if image_dir == self.workdir + "/build/bin":
            return self.bin_dir, "built"
        if image_dir.startswith(self.workdir + "/"):
            return os.path.join(REPO, image_dir[len(self.workdir) + 1:]), "repo"
        return image_dir, "system"

    def resolve(self, program):
        """(path here, kind) of a program named as the image's PATH finds
        it, kind one of built, repo, system; None when it is nowhere."""
        dirs = [os.path.dirname(program)] if "/" in program else self.path
        for image_dir in dirs:
            host, kind = self.host_dir(image_dir)
            candidate = os.path.join(host, os.path.basename(program))
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate, kind
        return None


def map_mounts(value, service_mounts, volume_dir):
    """VALUE with each volume's mount point (alone, or starting a path or
    an --opt=value's value) replaced by volume_dir(volume)."""
    for volume, target in service_mounts:
        pattern = r"(^|=)" + re.escape(target) + r"(?=/|$)"
        value = re.sub(pattern, lambda m, v=volume: m.group(1) + volume_dir(v), value)
    return value


def setting(service, option):
    """An option's value for a service as its program takes it: from the
    command line (--option VALUE or --option=VALUE), else from its CART_*
    variable; None when neither sets it."""
    args = command(service)
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    for name, value in environment(service).items():
        if option_of_variable(name) == option:
            return value
    return None


def seconds(duration, default):
    """A compose duration ('30s', '1m30s', '500ms') in seconds."""
    if duration is None:
        return default
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    return sum(float(n) * units[u] for n, u in parts) if parts else float(duration)


def published_target(service):
    """The container port of the service's first published port."""
    port = (service.get("ports") or [None])[0]
    if isinstance(port, dict):
        return int(port["target"])
    if port is None:
        raise ValueError("the service publishes no port")
    return int(str(port).split("/")[0].split(":")[-1])
