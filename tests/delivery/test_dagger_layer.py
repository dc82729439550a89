"""The delivery functions of the Dagger module, as far as the host can check them (no engine).

Registration builds every type definition with the real SDK; the container pipelines themselves
run only on an engine (GitHub Actions), where they call the same `python -m ci.deliver`
commands that the other tests in this folder run against real git and a real registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ci.deliver import parser
from ci.engine.delivery import PUBLIC_KEY, image_args, image_argument, signature_args

CI_SRC = Path(__file__).resolve().parents[2] / "ci" / "src"
DESCRIBE = """
import json, ci
functions = ci.Ci.__dagger_module__.get_object("Ci").functions
wanted = ["deploy", "promote", "rollback", "preview", "preview_destroy", "preview_gc", "release"]
print(json.dumps({
    name: {
        "cache": functions[name].cache_policy,
        "args": {
            p.name: [str(p.resolved_type), p.doc] for p in functions[name].parameters.values()
        },
    }
    for name in wanted
}))
"""


@pytest.fixture(scope="module")
def functions() -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", DESCRIBE],
        env={**os.environ, "PYTHONPATH": str(CI_SRC), "DAGGER_MAIN_OBJECT": "Ci"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, dict[str, object]] = json.loads(done.stdout)
    return loaded


def test_every_delivery_function_is_never_cached(functions: dict[str, dict[str, object]]) -> None:
    assert {name: spec["cache"] for name, spec in functions.items()} == dict.fromkeys(
        functions, "never"
    )


def test_arguments_are_documented_and_secrets_are_secrets(
    functions: dict[str, dict[str, object]],
) -> None:
    for name, spec in functions.items():
        args = spec["args"]
        assert isinstance(args, dict)
        for arg, (kind, doc) in args.items():
            assert doc, f"{name}.{arg} has no Doc"
            if "token" in arg or "password" in arg:
                assert "Secret" in kind, f"{name}.{arg} must be a dagger.Secret, not {kind}"
    promote, rollback = functions["promote"]["args"], functions["rollback"]["args"]
    assert isinstance(promote, dict)
    assert isinstance(rollback, dict)
    assert {"from", "to"} <= set(promote)
    assert {"env", "to", "repo_url", "git_token"} <= set(rollback)


def test_deploy_promote_and_release_take_what_the_signature_check_needs(
    functions: dict[str, dict[str, object]],
) -> None:
    for name in ("deploy", "promote", "release"):
        args = functions[name]["args"]
        assert isinstance(args, dict)
        assert "File" in args["public_key"][0], args["public_key"]
        assert "bool" in args["allow_unsigned"][0].lower(), args["allow_unsigned"]
        # they read the signatures from the registry: its credentials, the password a Secret
        prefix = "registry_" if name == "release" else ""
        assert {f"{prefix}username", f"{prefix}password"} <= set(args), name


def test_the_engine_passes_the_mounted_key_and_the_flag_to_ci_deliver() -> None:
    assert signature_args(public_key=True, allow_unsigned=False) == ["--public-key", PUBLIC_KEY]
    assert signature_args(public_key=False, allow_unsigned=True) == ["--allow-unsigned"]
    assert signature_args(public_key=False, allow_unsigned=False) == []  # ci.deliver: exit 2
    parsed = parser().parse_args(
        ["promote", "--from", "staging", "--to", "production", *signature_args(True, True)]
    )
    assert (parsed.public_key, parsed.allow_unsigned) == (PUBLIC_KEY, True)


def test_published_reference_becomes_an_image_argument() -> None:
    digest = "sha256:" + "a" * 64
    ref = f"ghcr.io/acme/chat/auth:main-1a2b3c4@{digest}"
    assert image_argument("auth", ref) == f"auth=main-1a2b3c4@{digest}"
    assert image_args({"b": "b=x@y", "a": "a=x@y"}) == ["--image", "a=x@y", "--image", "b=x@y"]
    with pytest.raises(ValueError, match="without a digest"):
        image_argument("auth", "ghcr.io/acme/auth:1.0")


def test_module_runtime_does_not_need_the_delivery_core_dependencies() -> None:
    # ci/pyproject.toml (the module runtime) has no ruamel.yaml nor cryptography: the delivery
    # core (and its signature check) runs in the container that `ci.delivery` builds, never
    # inside the module itself.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ci.main; print({'ruamel', 'cryptography'} & set(sys.modules) or False)",
        ],
        env={**os.environ, "PYTHONPATH": str(CI_SRC)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == "False", done.stderr
    assert "ruamel" not in (CI_SRC.parent / "pyproject.toml").read_text()
    assert "cryptography" not in (CI_SRC.parent / "pyproject.toml").read_text()
