"""Every command the docs show (```sh/```bash blocks, `$ ` lines of ```console blocks, in every
Markdown file of the repository) is exercised here, so the docs cannot drift from the code.

- runs here: `make T` as a dry run (`make -n`: the target exists, the variables parse);
  `python -m ci.X [sub]`, `kubectl [sub]`, `git sub` with `--help`/`-h`, and every option the
  docs pass must be one that help lists; `npm run S`: the script exists in that package.json;
  `node F`: the file exists and parses; the K3s scripts: `bash -n` and their usage line;
- checked without running: `dagger call F --opt ...` needs a Dagger engine (not here), so the
  function, each option and each chained call (`export`, `up`) are looked up in the module's
  real type definitions (dagger-io's registration, as `dagger` would see them);
- cannot run here: programs listed in NOT_HERE with the reason. Any other program fails the
  test: a new kind of command needs a way to check it or a stated reason.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from ci.core.mdtext import Command, Docs, commands
from ci.doclinks import markdown_files

REPO_ROOT = Path(__file__).resolve().parents[2]
CI_SRC = REPO_ROOT / "ci" / "src"
BIN = Path(sys.executable).parent
TIMEOUT = 120

# Programs whose commands cannot run on this machine, and why. Each still has to be spelled
# right by a human: keep this list short and honest.
NOT_HERE = {
    "sudo": "changes the host as root (a K3s node), not this machine",
    "curl": "talks to a deployed gateway or node",
    "helm": "no helm binary here (charts are rendered with helm-python-sdk in tests/charts)",
    "argocd": "the Argo CD CLI needs a running Argo CD",
    "systemctl": "manages K3s's systemd unit on the node",
    "journalctl": "reads K3s's journal on the node",
    "k3s": "the K3s binary on the node",
    "pg_restore": "runs inside the postgres pod (kubectl exec), against its backup volume",
    "pg_dump": "runs inside the postgres pod (kubectl exec)",
    "psql": "runs inside the postgres pod (kubectl exec)",
    "valkey-cli": "runs inside the redis pod (kubectl exec)",
    "ls": "lists a path inside a pod or on the node",
    "head": "filters output of a command that runs inside a pod",
    "docker": "no Docker daemon nor registry access here",
    "gh": "the GitHub CLI needs GitHub",
    "ssh": "reaches the K3s node",
    "kubeseal": "the Sealed Secrets CLI needs the cluster's controller",
}
K3S_SCRIPTS = re.compile(r"(?:\./)?k3s/[a-z-]+\.sh")
OPTION = re.compile(r"^(--?[A-Za-z][\w-]*)")


def doc_commands() -> list[Command]:
    docs = Docs(REPO_ROOT, markdown_files(REPO_ROOT))
    return [c for name in docs.files for c in commands(name, docs.tokens(name))]


COMMANDS = doc_commands()


def program(command: Command) -> str:
    """The program's name: `../../.venv/bin/python` is python, `./k3s/x.sh` stays a path."""
    first = command.argv[0]
    return first if K3S_SCRIPTS.fullmatch(first) else PurePosixPath(first).name


def options(argv: tuple[str, ...] | list[str]) -> list[str]:
    """Option names the command passes (`--a=b` -> `--a`; `[--x` of optional syntax -> `--x`)."""
    names = (OPTION.match(word.lstrip("[")) for word in argv)
    return [m.group(1) for m in names if m]


def run(args: list[str], cwd: Path = REPO_ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def assert_listed(names: list[str], help_text: str, command: Command) -> None:
    def listed(name: str) -> bool:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", help_text):
            return True
        bundled = re.fullmatch(r"-([A-Za-z]{2,})", name)  # -it = -i -t
        return bool(bundled) and all(listed(f"-{c}") for c in name[1:])

    missing = [n for n in names if not listed(n)]
    assert not missing, f"{command}: {missing} not in the help of {command.argv[:3]}"


# --- how each program is checked ---------------------------------------------------------------


def check_make(command: Command) -> None:
    done = run(["make", "-n", "--no-print-directory", *command.argv[1:]])
    assert done.returncode == 0, f"{command}: make -n: {done.stderr}"


def check_python(command: Command) -> None:
    argv = list(command.argv[1:])
    assert argv[:1] == ["-m"] or argv[0].endswith(".py"), f"{command}: python -m MODULE or FILE"
    target = argv[:2] if argv[0] == "-m" else argv[:1]
    rest = argv[len(target) :]
    assert python_help(tuple(target)) is not None, f"{command}: {' '.join(target)} --help fails"
    while rest and not rest[0].startswith("-") and is_subcommand(target, rest[0]):
        target, rest = [*target, rest[0]], rest[1:]
    assert_listed(options(rest), python_help(tuple(target)) or "", command)


@functools.cache
def python_help(target: tuple[str, ...]) -> str | None:
    done = run([sys.executable, *target, "--help"], PYTHONPATH=str(CI_SRC))
    return done.stdout if done.returncode == 0 else None


def is_subcommand(target: list[str], word: str) -> bool:
    """argparse prints a subcommand's own usage line, naming it, for `... word --help`."""
    text = python_help((*target, word))
    return text is not None and f" {word} " in text.partition("\n")[0] + " "


@functools.cache
def kubectl_global_options() -> str:
    return run(["kubectl", "options"]).stdout


# kubectl's global options that take a value: their value is no subcommand.
KUBECTL_VALUE_OPTIONS = frozenset({"-n", "--namespace", "--context", "--kubeconfig", "-s"})


def check_kubectl(command: Command) -> None:
    """`kubectl [global options] command [subcommand] ...`: each command word must be one that
    kubectl's help lists, each option one that the command's or the global help lists."""
    argv = list(command.argv[1:])
    argv = argv[: argv.index("--")] if "--" in argv else argv  # after --: the pod's command
    words, skip = [], False
    for word in argv:
        if not skip and not word.startswith("-"):
            words.append(word)
        skip = not skip and word in KUBECTL_VALUE_OPTIONS
    path: list[str] = []
    for word in words:
        if path and word not in kubectl_subcommands(tuple(path)):
            break
        if not path and kubectl_help((word,)) is None:
            break
        path.append(word)
    assert path, f"{command}: no kubectl command in {words[:1]}"
    help_text = kubectl_help(tuple(path)) or ""
    assert_listed(options(argv), help_text + kubectl_global_options(), command)


@functools.cache
def kubectl_help(path: tuple[str, ...]) -> str | None:
    done = run(["kubectl", *path, "--help"])
    return done.stdout if done.returncode == 0 else None


def kubectl_subcommands(path: tuple[str, ...]) -> set[str]:
    """The names under "Available Commands:" of a kubectl command's help."""
    text = (kubectl_help(path) or "").partition("Available Commands:")[2]
    return set(re.findall(r"^  ([a-z][\w-]*)\s", text.partition("\n\n")[0], re.MULTILINE))


def check_git(command: Command) -> None:
    sub = command.argv[1]
    done = run(["git", sub, "-h"])
    assert done.returncode == 129, f"{command}: no git command {sub!r}"
    assert done.stdout.startswith("usage: git"), f"{command}: {done.stdout}"
    assert_listed(options(command.argv[2:]), done.stdout, command)


def check_npm(command: Command) -> None:
    package = REPO_ROOT / command.cwd / "package.json"
    assert package.is_file(), f"{command}: no package.json in {command.cwd}"
    scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts", {})
    verb, *rest = command.argv[1:]
    script = rest[0] if verb == "run" else verb
    assert verb in ("run", "test", "start"), f"{command}: npm {verb}"
    assert script in scripts, f"{command}: no script {script!r} in {package}"


def check_node(command: Command) -> None:
    script = REPO_ROOT / command.cwd / command.argv[1]
    assert script.is_file(), f"{command}: no such file {script}"
    done = run(["node", "--check", str(script)])
    assert done.returncode == 0, f"{command}: {done.stderr}"


def check_k3s_script(command: Command) -> None:
    """The host scripts install K3s as root: not here. Their syntax and usage line are."""
    script = REPO_ROOT / command.argv[0]
    assert script.is_file(), f"{command}: no such script"
    assert run(["bash", "-n", str(script)]).returncode == 0
    assert_listed(options(command.argv[1:]), script.read_text(encoding="utf-8"), command)


# The module's functions as `dagger call` sees them: kebab-case names, their parameters, what
# they return; read from dagger-io's registration of the real module (no engine needed).
DAGGER_SCHEMA = """
import json, re, sys, importlib
module_name, main = sys.argv[1], sys.argv[2]
mod = importlib.import_module(module_name)
registry = getattr(mod, main).__dagger_module__
def kebab(name): return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower().replace("_", "-")
def describe(name):
    obj = registry.get_object(name)
    out = {}
    for f in obj.functions.values():
        ret = getattr(f.return_type, "__name__", str(f.return_type))
        params = f.parameters.values()
        out[kebab(f.name)] = {
            "args": [kebab(p.name) for p in params],
            "flags": [kebab(p.name) for p in params if p.resolved_type is bool],
            "returns": ret,
        }
    return out
names = [o for o in registry._objects] if hasattr(registry, "_objects") else [main]
ctor = registry.get_object(main).get_constructor()
functions = registry.get_object(main).functions.values()
print(json.dumps({
    "objects": {n: describe(n) for n in names},
    "checks": [kebab(f.name) for f in functions if f.check],
    "generators": [kebab(f.name) for f in functions if f.generate],
    "main": main,
    "constructor": [kebab(p.name) for p in (ctor.parameters.values() if ctor else [])],
}))
"""
DAGGER_MODULES = {
    "": ("ci", "Ci", CI_SRC),
    "ci/tests": ("ci_tests", "CiTests", REPO_ROOT / "ci" / "tests" / "src"),
}
# Functions of Dagger's core types that the docs chain after a module function.
CORE_CHAINS = {
    "Directory": {"export", "entries"},
    "File": {"export", "contents"},
    "Service": {"up", "endpoint"},
    "Container": {"export", "stdout", "terminal", "publish"},
    "str": set(),
}


@functools.cache
def dagger_schema(module: str) -> dict[str, object]:
    name, main, path = DAGGER_MODULES[module]
    done = run(
        [sys.executable, "-c", DAGGER_SCHEMA, name, main],
        PYTHONPATH=str(path),
        DAGGER_MAIN_OBJECT=main,
    )
    assert done.returncode == 0, done.stderr
    schema: dict[str, object] = json.loads(done.stdout)
    return schema


def check_dagger(command: Command) -> None:
    """Needs an engine to run; the call's shape is checked against the module instead."""
    argv = list(command.argv[1:])
    if argv[0] in ("check", "generate"):
        check_dagger_conventions(command, argv[0], argv[1:])
        return
    assert argv[0] == "call", f"{command}: only dagger call, check and generate"
    argv = argv[1:]
    module = ""
    if argv[:1] == ["-m"]:
        module, argv = argv[1], argv[2:]
    assert module in DAGGER_MODULES, f"{command}: unknown module {module!r}"
    schema = dagger_schema(module)
    objects: dict[str, dict[str, dict[str, object]]] = schema["objects"]  # type: ignore[assignment]
    current = str(schema["main"])
    allowed: set[str] = set(schema["constructor"])  # type: ignore[call-overload]
    flags: set[str] = set()
    words = [w for w in argv if w != "..."]
    while words:
        word, words = words[0], words[1:]
        if word.startswith("-"):
            name = word.removeprefix("--").partition("=")[0]
            assert name in allowed, f"{command}: {word} is no argument (allowed: {sorted(allowed)})"
            takes_value = name not in flags and "=" not in word
            if takes_value and words and not words[0].startswith("-"):
                words = words[1:]  # its value
            continue
        if current in objects:
            function = objects[current].get(word)
            assert function, f"{command}: {current} has no function {word!r}"
            allowed = set(function["args"])  # type: ignore[call-overload]
            flags = set(function["flags"])  # type: ignore[call-overload]
            current = str(function["returns"])
        else:
            assert word in CORE_CHAINS.get(current, set()), f"{command}: {current}.{word}?"
            allowed, flags = {"path", "ports", "wipe", "random"}, {"wipe", "random"}
            current = "str"


def check_dagger_conventions(command: Command, verb: str, patterns: list[str]) -> None:
    """`dagger check [PATTERN...]` / `dagger generate [PATTERN...]`: every pattern matches one
    of the module's checks or generators (as the CLI selects them: shell-style globs)."""
    schema = dagger_schema("")
    names: list[str] = schema["checks" if verb == "check" else "generators"]  # type: ignore[assignment]
    assert names, f"{command}: the module registers no {verb} function"
    for pattern in patterns:
        assert not pattern.startswith("-"), f"{command}: {pattern} (no flags are documented)"
        assert fnmatch.filter(names, pattern), f"{command}: {pattern!r} matches none of {names}"


def check_not_here(command: Command) -> None:
    reason = NOT_HERE[program(command)]
    assert reason  # listed with its reason; the rest of the command is spelled by hand
    if program(command) == "sudo" and K3S_SCRIPTS.fullmatch(command.argv[1]):
        check_k3s_script(Command(**{**command.__dict__, "argv": command.argv[1:]}))


CHECKS = {
    "make": check_make,
    "python": check_python,
    "python3": check_python,
    "kubectl": check_kubectl,
    "git": check_git,
    "npm": check_npm,
    "node": check_node,
    "dagger": check_dagger,
}


def check_for(command: Command) -> object:
    name = program(command)
    if K3S_SCRIPTS.fullmatch(name):
        return check_k3s_script
    if name in NOT_HERE:
        return check_not_here
    return CHECKS.get(name)


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.file}:{c.line}" for c in COMMANDS])
def test_documented_command(command: Command) -> None:
    check = CHECKS.get(program(command)) or check_for(command)
    assert callable(check), (
        f"{command}: no way to check {program(command)!r}; add one to tests/docs/test_commands.py"
        " (CHECKS), or list it in NOT_HERE with the reason it cannot run here"
    )
    check(command)


def test_the_docs_show_commands_of_every_kind_checked_here() -> None:
    kinds = {program(c) for c in COMMANDS}
    assert {"make", "python", "dagger", "kubectl"} <= kinds, kinds


def test_commands_that_cannot_run_here_are_listed_with_their_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    not_here = [c for c in COMMANDS if check_for(c) is check_not_here]
    with capsys.disabled():
        for c in not_here:
            print(f"\nnot run here ({NOT_HERE[program(c)]}): {c}", end="")
    assert all(NOT_HERE[program(c)] for c in not_here)


def test_unknown_programs_and_misspelled_options_fail() -> None:
    """The checks can fail: a made-up program, a made-up option, a made-up function."""

    def command(text: str) -> Command:
        return Command("x.md", 1, text, (), tuple(shlex.split(text)), ".")

    assert check_for(command("frobnicate --now")) is None
    for text in (
        "make no-such-target",
        "python -m ci.plan --no-such-option",
        "python -m ci.cluster install --no-such-option",
        "kubectl logs --no-such-option",
        "dagger call no-such-function",
        "dagger call check --no-such-argument",
        "dagger call check export --path x",
        "git revert --no-such-option",
    ):
        with pytest.raises(AssertionError):
            CHECKS[program(command(text))](command(text))


def test_tools_the_checks_need_are_installed() -> None:
    for tool in ("make", "kubectl", "git", "node", "bash"):
        assert shutil.which(tool, path=f"{BIN}{os.pathsep}{os.environ['PATH']}"), tool
