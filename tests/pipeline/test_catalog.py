"""Catalog loading: valid files load, every error names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from ci.core.catalog import SERVICE_FILE, CatalogError, build_catalog, catalog_json, load_catalog
from pipeline.repos import AUTH, BACKEND, FRONTEND, Repo

REPO_ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"auth", "backend", "frontend", "servicekit"}


def files(**overrides: str) -> dict[str, str]:
    texts = {"auth": AUTH, "backend": BACKEND, "frontend": FRONTEND} | overrides
    return {f"services/{name}/{SERVICE_FILE}": text for name, text in texts.items()}


def problems_of(service_files: dict[str, str], folders: set[str] = FOLDERS) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        build_catalog(service_files, folders)
    return caught.value.problems


def test_fixture_repository_loads_with_services_sorted_and_libraries(repo: Repo) -> None:
    catalog = load_catalog(repo.root)

    assert catalog.names() == ["auth", "backend", "frontend"]
    assert catalog.libraries == {"servicekit"}
    auth = catalog.get("auth")
    assert auth.needs == ["postgres", "redis"]
    assert auth.migrate == ["python", "-m", "auth.migrate"]
    assert catalog.get("backend").workers[0].name == "outbox"
    assert [s.name for s in catalog.users_of("servicekit")] == ["auth", "backend"]
    assert '"name": "frontend"' in catalog_json(catalog)


def test_port_out_of_range_names_file_and_field() -> None:
    problems = problems_of(files(auth=AUTH.replace("port: 8000", "port: 70000")))

    assert len(problems) == 1
    assert problems[0].startswith("services/auth/service.yaml: field 'port':")
    assert "65535" in problems[0]


def test_misspelled_field_is_rejected_by_name() -> None:
    problems = problems_of(files(backend=BACKEND.replace("needs:", "neds:")))

    assert any(p.startswith("services/backend/service.yaml: field 'neds':") for p in problems)


def test_unknown_backing_service_and_kind_are_named() -> None:
    broken = AUTH.replace("needs: [postgres, redis]", "needs: [postgres, mysql]").replace(
        "kind: python", "kind: ruby"
    )
    problems = problems_of(files(auth=broken))

    assert any("field 'needs.1'" in p for p in problems)
    assert any("field 'kind'" in p for p in problems)
    assert all(p.startswith("services/auth/service.yaml:") for p in problems)


def test_every_wrong_field_of_one_file_is_named_down_to_list_items_and_workers() -> None:
    broken = (
        BACKEND.replace("kind: python", "kind: ruby")
        .replace("needs: [postgres]", "needs: [postgres, mysql, sqlite]")
        .replace("run: [python, -m, backend.outbox]", "run: []\n    restart: always")
        .replace("name: outbox", "name: Outbox")
    )

    problems = problems_of(files(backend=broken))

    fields = sorted(p.split("'")[1] for p in problems)
    assert fields == [
        "kind",
        "needs.1",
        "needs.2",
        "workers.0.name",
        "workers.0.restart",
        "workers.0.run",
    ]
    assert all(p.startswith("services/backend/service.yaml: field '") for p in problems)
    assert any("'Outbox' is not a DNS-1123 label" in p for p in problems)


def test_a_worker_that_is_not_a_mapping_is_named() -> None:
    problems = problems_of(files(backend=BACKEND + "  - just a string\n"))

    assert len(problems) == 1
    assert problems[0].startswith("services/backend/service.yaml: field 'workers.1': ")


def test_duplicate_needs_are_named() -> None:
    problems = problems_of(files(auth=AUTH.replace("[postgres, redis]", "[redis, redis]")))

    assert problems == ["services/auth/service.yaml: field 'needs': duplicate entries: redis"]


def test_missing_required_field_is_named() -> None:
    problems = problems_of(files(frontend=FRONTEND.replace("route: /\n", "")))

    assert problems == [
        "services/frontend/service.yaml: field 'route': Field required",
    ]


def test_uses_must_name_an_existing_library_folder() -> None:
    problems = problems_of(files(auth=AUTH.replace("uses: [servicekit]", "uses: [servicekitt]")))

    assert len(problems) == 1
    assert problems[0].startswith("services/auth/service.yaml: field 'uses.0': 'servicekitt'")
    assert "libraries: servicekit" in problems[0]


def test_uses_may_not_name_a_service() -> None:
    problems = problems_of(files(auth=AUTH.replace("uses: [servicekit]", "uses: [backend]")))

    assert any("field 'uses.0': 'backend' is not a library folder" in p for p in problems)


def test_name_must_equal_folder() -> None:
    problems = problems_of(files(backend=BACKEND.replace("name: backend", "name: chat")))

    assert problems == [
        "services/backend/service.yaml: field 'name': 'chat' must equal the folder 'backend'"
    ]


def test_name_must_be_a_dns_label() -> None:
    problems = problems_of(files(auth=AUTH.replace("name: auth", "name: Auth_Service")))

    assert any("field 'name'" in p and "DNS-1123" in p for p in problems)


def test_broken_yaml_and_non_mapping_are_reported_per_file() -> None:
    problems = problems_of(files(auth="name: [unclosed\n", backend="- just\n- a list\n"))

    assert any(p.startswith("services/auth/service.yaml: not valid YAML") for p in problems)
    assert "services/backend/service.yaml: expected a mapping of fields, got list" in problems


def test_every_broken_file_is_reported_in_one_error() -> None:
    problems = problems_of(
        files(
            auth=AUTH.replace("port: 8000", "port: zero"),
            frontend=FRONTEND.replace("health: /health", "health: health"),
        )
    )

    assert {p.split(":")[0] for p in problems} == {
        "services/auth/service.yaml",
        "services/frontend/service.yaml",
    }


def test_unreadable_service_file_is_an_error_naming_it(repo: Repo) -> None:
    (repo.root / "services" / "auth" / SERVICE_FILE).write_bytes(b"name: \xff\xfe auth\n")

    with pytest.raises(CatalogError, match=r"services/auth/service.yaml: cannot be read"):
        load_catalog(repo.root)


def test_missing_services_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="services/: folder not found"):
        load_catalog(tmp_path)


def test_the_real_catalog_of_this_repository_is_valid() -> None:
    """Every service.yaml present in this checkout loads and validates."""
    services = REPO_ROOT / "services"
    present = sorted(p.parent.name for p in services.glob(f"*/{SERVICE_FILE}"))

    catalog = load_catalog(REPO_ROOT)

    assert catalog.names() == present
    for service in catalog.services:
        assert all((services / library).is_dir() for library in service.uses)
