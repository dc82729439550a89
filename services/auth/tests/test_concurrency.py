"""Concurrent duplicate registrations over real HTTP: one 201, the rest 409, never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import psycopg

PASSWORD = "correct horse battery staple"


async def test_concurrent_duplicate_registration(live_url: str, migrated_database_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        # Different spellings of one name: the case-insensitive unique index must catch them too.
        names = ["mallory", "Mallory", "MALLORY", "mallory", "MaLLory", "mallory"] * 2
        responses = await asyncio.gather(
            *(http.post("/register", json={"username": n, "password": PASSWORD}) for n in names)
        )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 409: len(names) - 1}
    with psycopg.connect(migrated_database_url) as conn:
        count = conn.execute("SELECT count(*) FROM users").fetchone()
    assert count == (1,)


async def test_concurrent_distinct_registrations_all_succeed(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post("/register", json={"username": f"user{i}", "password": PASSWORD})
                for i in range(8)
            )
        )
    assert [r.status_code for r in responses] == [201] * 8


async def test_concurrent_refresh_of_one_token_lets_at_most_one_through(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        await http.post("/register", json={"username": "oscar", "password": PASSWORD})
        login = await http.post("/login", json={"username": "oscar", "password": PASSWORD})
        token = login.json()["refresh_token"]
        responses = await asyncio.gather(
            *(http.post("/refresh", json={"refresh_token": token}) for _ in range(6))
        )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 401: 5}
