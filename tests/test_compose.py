#!/usr/bin/env python3
"""docker-compose.yml checked without a Docker engine: docker-compose
config -q accepts it, and every program it runs (each service's command,
each health check, the Dockerfile's CMD) is one the image has, given only
flags that program's --help lists, each with its value; every CART_*
variable names a flag of its service's program; every path under a
volume's mount point is in a volume the service mounts; every tcp:// host
is a service or the service itself. Then the check is shown to fail: on
mutated copies of the file, each with one mistake, it must fail naming it.

Usage: test_compose.py BIN_DIR [--file COMPOSE_FILE]
(default: the repo's docker-compose.yml; BIN_DIR: the build's programs)"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

import cart_compose

# Programs that need more than --help to list every flag
HELP_ARGS = {"curl": ["--help", "all"]}
# Hosts a service may name besides the services: itself and any address
SELF_HOSTS = {"127.0.0.1", "localhost", "*", "0.0.0.0"}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


# --- what a program accepts, from its --help -------------------------------

class Usage:
    """A program's flags (with whether each takes a value), the number of
    positional arguments it takes, and whether it reads CART_* variables."""

    def __init__(self, flags, positionals, reads_env):
        self.flags = flags                # "--x" or "-x" -> takes a value
        self.positionals = positionals    # (least, most); most None: any
        self.reads_env = reads_env


def parse_gnu_help(text):
    """Flags of a help written as '  -o, --output <file>  Write ...'."""
    flags = {}
    for m in re.finditer(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)( <[^>]+>)?", text):
        flags[m.group(1)] = flags.get(m.group(1), False) or bool(m.group(2))
    return flags


def parse_our_help(text, words):
    """Flags and positionals of our programs' help: its option lines
    ('  --shard LIST   ...') and its usage line ('usage: PROG [--x EP] NAME...');
    a flag named in prose is none of the program's.
    WORDS: the program's words on the usage line (cartctl's subcommand)."""
    flags = {}
    usage = re.search(r"^usage: (.*)$", text, re.M | re.I)
    lines = re.findall(r"^\s+--.*$", text, re.M) + ([usage.group(0)] if usage else [])
    for m in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9-]*)( [A-Z][A-Z0-9_]*\b)?", "\n".join(lines)):
        flags[m.group(1)] = flags.get(m.group(1), False) or bool(m.group(2))
    least, most = 0, 0
    if usage:
        tokens = usage.group(1).split()[words:]
        rest = re.sub(r"\[[^\]]*\]", lambda m: " OPT:" + m.group(0)[1:-1].replace(" ", "_"),
                      " ".join(tokens)).split()
        i = 0
        while i < len(rest):
            t = rest[i]
            if t.startswith("--"):
                i += 2 if flags.get(t) else 1
                continue
            if t.startswith("OPT:"):
                inner = t[4:]
                if re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.\.)?", inner):
                    most = None if most is None or inner.endswith("...") else most + 1
            elif re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.\.)?", t):
                least += 1
                most = None if most is None or t.endswith("...") else most + 1
            i += 1
    return flags, (least, most)


class Programs:
    """Each program's Usage, asked once."""

    def __init__(self, image, deps_packages):
        self.image = image
        self.deps_packages = deps_packages
        self.cache = {}

    def usage(self, argv, where, problems):
        """Usage of argv's program, None (with a problem added) when the
        image has no such program."""
        found = self.image.resolve(argv[0])
        if not found:
            problems.add(where, f"no program {argv[0]!r} in the image (its PATH: "
                         f"{':'.join(self.image.path)}, the build's in {self.image.bin_dir})")
            return None
        path, kind = found
        sub = []
        if os.path.basename(path) == "cartctl":
            if len(argv) < 2 or argv[1].startswith("-"):
                problems.add(where, "cartctl without a command")
                return None
            sub = [argv[1]]
        key = (path, *sub)
        if key not in self.cache:
            self.cache[key] = self.ask(path, kind, sub, where, problems)
        return self.cache[key]

    def ask(self, path, kind, sub, where, problems):
        name = os.path.basename(path)
        if kind == "system":
            package = self.package_of(path)
            if package is None:
                problems.add(where, f"{path} is no Debian package's program: "
                             "the image would not have it")
                return None
            out = run([path, *HELP_ARGS.get(name, ["--help"])])
            return Usage(parse_gnu_help(out.stdout), (0, None), False)
        out = run([path, *sub, "--help"])
        if out.returncode != 0:
            problems.add(where, f"{name} {' '.join(sub)} --help exits {out.returncode}: "
                         f"{(out.stderr or out.stdout).strip()[:300]}")
            return None
        flags, positionals = parse_our_help(out.stdout, 1 + len(sub))
        reads_env = kind == "built" and name != "cartctl"
        if sub:   # the subcommand is a positional of cartctl's own
            positionals = (positionals[0] + 1,
                           None if positionals[1] is None else positionals[1] + 1)
        return Usage(flags, positionals, reads_env)

    def package_of(self, path):
        """The Debian package that ships PATH, when the image has it: an
        essential package (in every Debian) or one scripts/deps.sh installs."""
        out = run(["dpkg-query", "-S", os.path.realpath(path)])
        if out.returncode != 0:
            out = run(["dpkg-query", "-S", path])
        if out.returncode != 0:
            return None
        package = out.stdout.split(":")[0].strip()
        essential = run(["dpkg-query", "-W", "-f=${Essential}", package]).stdout.strip()
        return package if essential == "yes" or package in self.deps_packages else None


def deps_packages():
    """The package list of scripts/deps.sh (its pkgs=( ... ) array)."""
    with open(os.path.join(cart_compose.REPO, "scripts", "deps.sh")) as f:
        m = re.search(r"^pkgs=\((.*?)\)", f.read(), re.M | re.S)
    return set(re.sub(r"#[^\n]*", "", m.group(1)).split()) if m else set()


# --- the checks -------------------------------------------------------------

def check_argv(argv, usage, where, problems):
    """Every flag known, each value present; positionals within bounds."""
    positionals = 0
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positionals += len(argv) - i - 1
            break
        if arg.startswith("--"):
            name, eq, _ = arg.partition("=")
            if name not in usage.flags:
                problems.add(where, f"{os.path.basename(argv[0])} has no flag {name}")
                if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                    i += 1   # most likely its value: not a positional too
            elif usage.flags[name] and not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    problems.add(where, f"{name} needs a value")
                else:
                    i += 1
            elif eq and not usage.flags[name]:
                problems.add(where, f"{name} takes no value")
        elif arg.startswith("-") and len(arg) > 1:
            for j, c in enumerate(arg[1:]):
                flag = "-" + c
                if flag not in usage.flags:
                    problems.add(where, f"{os.path.basename(argv[0])} has no flag {flag}")
                elif usage.flags[flag]:
                    if j == len(arg) - 2:
                        i += 1
                        if i >= len(argv):
                            problems.add(where, f"{flag} needs a value")
                    break
        else:
            positionals += 1
        i += 1
    least, most = usage.positionals
    if positionals < least or (most is not None and positionals > most):
        problems.add(where, f"{positionals} positional argument(s) where "
                     f"{os.path.basename(argv[0])} takes {least}..{'' if most is None else most}")
    return positionals


def check_environment(env, argv, usage, where, problems):
    on_line = {a.split("=", 1)[0] for a in argv[1:] if a.startswith("--")}
    for name, value in env.items():
        option = cart_compose.option_of_variable(name)
        if option is None:
            continue
        if not usage.reads_env:
            problems.add(where, f"{name}: {os.path.basename(argv[0])} reads no CART_* variable")
        elif option not in usage.flags or option == "--help":
            problems.add(where, f"{name}: {os.path.basename(argv[0])} has no flag {option}")
        elif usage.flags[option] and value == "":
            problems.add(where, f"{name}: {option} needs a value")
        elif not usage.flags[option] and value != "1":
            problems.add(where, f"{name}={value}: {option} takes no value (set it to 1)")
        if option in on_line:
            problems.add(where, f"{name} and {option} both set: say it once")


def check_paths(values, service_mounts, all_targets, where, problems):
    mounted = {t for _, t in service_mounts}
    for value in values:
        for target in all_targets - mounted:
            if re.search(r"(^|=)" + re.escape(target) + r"(/|$)", value):
                problems.add(where, f"{value}: {target} is not mounted here")


def check_hosts(values, services, name, where, problems):
    for value in values:
        for host in re.findall(r"tcp://([^:/,]+)", value):
            if host not in services and host not in SELF_HOSTS and host != name:
                problems.add(where, f"{value}: no service {host}")


def check_file(path, programs, compose_config=True):
    """What is wrong in the compose file at PATH, as a list of lines."""
    problems = Problems()
    if compose_config:
        out = run(["docker-compose", "-f", path, "--project-directory", cart_compose.REPO,
                   "config", "-q"])
        if out.returncode != 0:
            problems.add("docker-compose config -q", (out.stderr or out.stdout).strip())
    services = cart_compose.load(path)
    image = programs.image
    all_targets = {t for s in services.values() for _, t in cart_compose.mounts(s)}
    for name, service in services.items():
        env = cart_compose.environment(service)
        service_mounts = cart_compose.mounts(service)
        argv = cart_compose.command(service)
        if not argv:
            problems.add(name, "no command: say which program runs")
        else:
            usage = programs.usage(argv, f"{name}.command", problems)
            if usage:
                check_argv(argv, usage, f"{name}.command", problems)
                check_environment(env, argv, usage, f"{name}.environment", problems)
        try:
            test = cart_compose.health_test(service)
        except ValueError as e:
            problems.add(f"{name}.healthcheck", str(e))
            test = None
        if test:
            usage = programs.usage(test, f"{name}.healthcheck", problems)
            if usage:
                check_argv(test, usage, f"{name}.healthcheck", problems)
        values = argv + (test or []) + list(env.values())
        check_paths(values, service_mounts, all_targets, name, problems)
        check_hosts(values, services, name, name, problems)
    for cmd in image.cmd:
        argv = cart_compose.argv(yaml.safe_load(cmd))
        usage = programs.usage(argv, "Dockerfile CMD", problems)
        if usage:
            check_argv(argv, usage, "Dockerfile CMD", problems)
    return problems.items


# --- the check must be able to fail ----------------------------------------

def mutations(services):
    """(what, the mistake's text in the report, a change to the services,
    whether docker-compose config is the one to find it)"""
    def worker(k):
        return services[f"worker-{k}"]

    def add_flag(s):
        s["broker"]["command"].append("--no-such-flag")

    def add_variable(s):
        s["worker-0"]["environment"]["CART_NO_SUCH_OPTION"] = "1"

    def health_flag(s):
        test = s["worker-1"]["healthcheck"]["test"]
        test[test.index("--broker-key")] = "--broker-keys"

    def program(s):
        s["http"]["command"][0] = "http-front"

    def no_value(s):
        cmd = s["worker-2"]["command"]
        cmd[:] = [a for a in cmd if a != "--shard" and a != "2"] + ["--shard"]

    def cartctl_env(s):
        s["keys"]["environment"] = {"CART_BROKER": "tcp://broker:5555"}

    def unmounted(s):
        s["http"]["volumes"] = []

    def host(s):
        s["worker-3"]["environment"] = dict(worker(3)["environment"],
                                            CART_BROKER="tcp://brokr:5556")

    def schema(s):
        s["broker"]["healthchek"] = s["broker"].pop("healthcheck")

    def twice(s):
        s["http"]["environment"]["CART_HOST"] = "0.0.0.0"

    def shell_check(s):
        s["http"]["healthcheck"]["test"] = ["CMD-SHELL", "curl http://127.0.0.1:8080/healthz"]

    return [("a bogus flag", "no flag --no-such-flag", add_flag, False),
            ("a bogus variable", "CART_NO_SUCH_OPTION", add_variable, False),
            ("a bogus health check flag", "no flag --broker-keys", health_flag, False),
            ("a program the build lacks", "no program 'http-front'", program, False),
            ("a flag without its value", "--shard needs a value", no_value, False),
            ("a CART_* variable for a script", "reads no CART_", cartctl_env, False),
            ("a path out of the service's volumes", "/keys is not mounted", unmounted, False),
            ("a host that is no service", "no service brokr", host, False),
            ("a key compose does not know", "docker-compose config -q", schema, True),
            ("a flag and its variable both", "both set", twice, False),
            ("a shell health check", "must be [\"CMD\"", shell_check, False)]


def self_check(path, programs):
    """Each mutation of the file, written to a copy, must fail the check,
    which must name the mistake. docker-compose config (a second a run)
    is asked only where the mistake is its own to find."""
    failures = 0
    with tempfile.TemporaryDirectory(prefix="test_compose.") as tmp:
        for i, (what, expect, change, compose_config) in enumerate(
                mutations(cart_compose.load(path))):
            services = cart_compose.load(path)
            change(services)
            with open(path) as f:
                doc = yaml.safe_load(f)
            doc["services"] = services
            doc = {k: v for k, v in doc.items() if not k.startswith("x-")}
            copy = os.path.join(tmp, f"docker-compose.{i}.yml")
            with open(copy, "w") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            problems = check_file(copy, programs, compose_config)
            if any(expect in p for p in problems):
                print(f"ok: {what} fails the check")
            else:
                failures += 1
                print(f"FAIL: the check missed {what} (want a problem with {expect!r}); "
                      f"it found: {problems}")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--file", default=cart_compose.COMPOSE_FILE)
    parser.add_argument("--no-self-check", action="store_true")
    args = parser.parse_args()
    if not shutil.which("docker-compose"):
        print("FAIL: docker-compose is not installed (scripts/deps.sh installs it)")
        return 1
    programs = Programs(cart_compose.Image(args.bin_dir), deps_packages())
    problems = check_file(args.file, programs)
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"ok: {args.file}: every program, flag, variable, path and host")
    failures = 1 if problems else 0
    count = 1
    if not args.no_self_check:
        failures += self_check(args.file, programs)
        count += len(mutations(cart_compose.load(args.file)))
    print(f"{count - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
