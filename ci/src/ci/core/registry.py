"""A small OCI Distribution (registry HTTP API v2) client: re-tag an image without a rebuild.

Re-tagging is GET the manifest by digest (with every manifest media type in Accept, so the
registry returns the stored bytes unconverted), PUT the very same bytes under the new tag, and
check that the registry reports the same digest. No layer is pulled or pushed: the new tag is
just another name for the manifest the pipeline already built, scanned and tested.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Self

import httpx

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES)
REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class RegistryError(RuntimeError):
    """The registry refused or answered something unexpected; the message says what and where."""


@dataclass(frozen=True)
class Manifest:
    media_type: str
    data: bytes
    digest: str


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check(kind: str, pattern: re.Pattern[str], value: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} is not valid")
    return value


def _parse_challenge(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    found = dict(re.findall(r'(\w+)="([^"]*)"', params))
    found["scheme"] = scheme.lower()
    return found


class RegistryClient:
    """Talks to one registry (`base_url`, e.g. https://ghcr.io or http://127.0.0.1:5000).

    Credentials, when given, are used as HTTP basic auth or exchanged for a bearer token when the
    registry answers 401 with a `Bearer` challenge (the Docker token flow that ghcr.io uses).
    """

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._auth = httpx.BasicAuth(username, password) if username and password else None
        # Registries may redirect a blob GET to their storage (httpx drops auth across hosts).
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=True
        )
        self._tokens: dict[str, str] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # --- transport with auth -----------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        scope: str,
        headers: dict[str, str],
        content: bytes | None = None,
    ) -> httpx.Response:
        token = self._tokens.get(scope)
        response = self._send(method, url, headers, content, token)
        if response.status_code != 401 or token:
            return response
        challenge = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge.get("scheme") != "bearer":
            return response
        self._tokens[scope] = self._fetch_token(challenge, scope)
        return self._send(method, url, headers, content, self._tokens[scope])

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        token: str | None,
    ) -> httpx.Response:
        if token:
            headers = {**headers, "Authorization": f"Bearer {token}"}
            return self._client.request(method, url, headers=headers, content=content)
        auth = self._auth or httpx.USE_CLIENT_DEFAULT
        return self._client.request(method, url, headers=headers, content=content, auth=auth)

    def _fetch_token(self, challenge: dict[str, str], scope: str) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise RegistryError("registry sent a Bearer challenge without a realm")
        params = {"scope": challenge.get("scope", scope)}
        if "service" in challenge:
            params["service"] = challenge["service"]
        response = self._client.get(
            realm, params=params, auth=self._auth or httpx.USE_CLIENT_DEFAULT
        )
        if response.status_code != 200:
            raise RegistryError(f"token request to {realm} failed: HTTP {response.status_code}")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise RegistryError(f"token response from {realm} has no token")
        return token

    # --- API ---------------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest bytes exactly as stored, by tag or digest."""
        _check("repository", REPOSITORY, repository)
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            f"repository:{repository}:pull",
            headers={"Accept": ACCEPT},
        )
        if response.status_code != 200:
            raise RegistryError(
                f"GET manifest {repository}:{reference}: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )
        data = response.content
        digest = sha256_digest(data)
        if DIGEST.fullmatch(reference) and digest != reference:
            raise RegistryError(f"{repository}@{reference}: registry returned bytes of {digest}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(
                f"{repository}:{reference}: unsupported manifest type {media_type!r}"
            )
        return Manifest(media_type=media_type, data=data, digest=digest)

    def head_digest(self, repository: str, reference: str) -> str | None:
        """The digest `reference` resolves to, or None when the registry does not have it."""
        _check("repository", REPOSITORY, repository)
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            f"repository:{repository}:pull",
            headers={"Accept": ACCEPT},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(
                f"HEAD manifest {repository}:{reference}: HTTP {response.status_code}"
            )
        digest: str | None = response.headers.get("Docker-Content-Digest")
        if digest is None:
            # Not every registry sends the header on HEAD; the bytes decide.
            digest = self.get_manifest(repository, reference).digest
        return digest

    def get_blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes, checked against its digest."""
        _check("repository", REPOSITORY, repository)
        _check("digest", DIGEST, digest)
        response = self._request(
            "GET", f"/v2/{repository}/blobs/{digest}", f"repository:{repository}:pull", headers={}
        )
        if response.status_code != 200:
            raise RegistryError(f"GET blob {repository}@{digest}: HTTP {response.status_code}")
        if sha256_digest(response.content) != digest:
            raise RegistryError(f"{repository}@{digest}: registry returned other bytes")
        return response.content

    def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> str:
        _check("tag", TAG, tag)
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            f"repository:{repository}:pull,push",
            headers={"Content-Type": manifest.media_type},
            content=manifest.data,
        )
        if response.status_code not in (200, 201):
            detail = response.text[:200]
            raise RegistryError(
                f"PUT manifest {repository}:{tag}: HTTP {response.status_code} {detail}"
            )
        reported: str = response.headers.get("Docker-Content-Digest", manifest.digest)
        return reported

    def retag(self, repository: str, source: str, tag: str) -> str:
        """Give the manifest at `source` (digest or tag) the name `tag`; returns the digest.

        Raises RegistryError unless the new tag resolves to exactly the source digest.
        """
        manifest = self.get_manifest(repository, source)
        if DIGEST.fullmatch(source) and manifest.digest != source:
            raise RegistryError(f"{repository}@{source}: digest mismatch {manifest.digest}")
        reported = self.put_manifest(repository, tag, manifest)
        resolved = self.head_digest(repository, tag)
        if reported != manifest.digest or resolved != manifest.digest:
            raise RegistryError(
                f"{repository}:{tag} resolves to {resolved} (reported {reported}), "
                f"expected {manifest.digest}: the registry rewrote the manifest"
            )
        return manifest.digest


@dataclass(frozen=True)
class ImageName:
    """`registry/repository` split for the API (`ghcr.io/org/app` -> https://ghcr.io, org/app)."""

    base_url: str
    repository: str

    @classmethod
    def parse(cls, name: str, insecure: bool = False) -> ImageName:
        name = name.split("@", 1)[0]
        host, sep, repository = name.partition("/")
        if not sep or not ("." in host or ":" in host or host == "localhost"):
            raise ValueError(f"image name {name!r} must start with a registry host")
        last = repository.rsplit("/", 1)[-1]
        if ":" in last:
            repository = repository.rsplit(":", 1)[0]
        _check("repository", REPOSITORY, repository)
        local = host.startswith(("localhost", "127.0.0.1", "[::1]"))
        scheme = "http" if insecure or local else "https"
        return cls(base_url=f"{scheme}://{host}", repository=repository)
