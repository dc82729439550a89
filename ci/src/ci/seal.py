"""Seal a Secret for git: `python -m ci.seal` (run from ci/src).

    python -m ci.seal --cert cluster.pem --namespace chat-staging --name auth-database \\
        --key url --out ../../charts/platform/secrets/staging/auth-database.yaml < value-file

The value comes from standard input (never from the command line, where it would land in the
shell's history and the process list); --from-env NAME takes it from an environment variable
instead. With several --key options, standard input holds KEY=VALUE lines. The file written holds
only ciphertext: commit it. Exit status 0 on success, 2 on bad usage or input (named).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from ci.core.sealing import SealingError, sealed_secret


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ci.seal", description=__doc__.splitlines()[0])
    parser.add_argument("--cert", type=Path, required=True, help="the controller's certificate")
    parser.add_argument("--namespace", required=True, help="namespace of the Secret")
    parser.add_argument("--name", required=True, help="name of the Secret")
    parser.add_argument("--key", action="append", required=True, help="key(s) of the Secret")
    parser.add_argument("--from-env", help="read the (single) value from this variable")
    parser.add_argument("--out", type=Path, help="write here (atomically) instead of stdout")
    return parser.parse_args(argv)


def read_values(keys: list[str], from_env: str | None) -> dict[str, str]:
    if from_env is not None:
        if len(keys) != 1:
            raise SealingError("--from-env: takes exactly one --key")
        if from_env not in os.environ:
            raise SealingError(f"--from-env: {from_env} is not set")
        return {keys[0]: os.environ[from_env]}
    text = sys.stdin.read()
    if len(keys) == 1:
        return {keys[0]: text.removesuffix("\n")}
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    missing = sorted(set(keys) - set(values))
    if missing:
        raise SealingError(f"stdin: no KEY=VALUE line for {', '.join(missing)}")
    return {k: values[k] for k in keys}


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        certificate = args.cert.read_bytes()
    except OSError as error:
        print(f"--cert: cannot read {args.cert}: {error.strerror}", file=sys.stderr)
        return 2
    try:
        values = read_values(args.key, args.from_env)
        manifest = sealed_secret(certificate, args.namespace, args.name, values)
    except SealingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(manifest, sort_keys=False)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomically(args.out, text)
        print(f"sealed {args.namespace}/{args.name} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
