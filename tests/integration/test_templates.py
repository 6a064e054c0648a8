"""Prompt templates: saved, changed, applied through the API; personal with accounts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_accounts import ACCOUNTS, add_user, signed_in
from volcimage.presets import service as templates

API = "/api/v1/templates"
LANTERN = {
    "name": "Lanterns",
    "prompt": "paper lanterns over a river at dusk",
    "negative_prompt": "blurry",
    "model": "seedream-3.0",
    "params": {"width": 1024, "height": 768, "num_images": 2, "scale": 2.5, "seed": 7},
}


async def test_templates_are_saved_changed_and_deleted(make_studio: Any) -> None:
    async with make_studio() as studio:
        client = studio.client
        created = await client.post(API, json=LANTERN)
        assert created.status_code == 201
        body = created.json()
        assert body["name"] == "Lanterns" and body["params"]["seed"] == 7
        assert body["params"]["steps"] is None
        second = await client.post(API, json={"name": "  Fog ", "prompt": "morning fog"})
        assert second.json()["name"] == "Fog" and second.json()["model"] is None
        assert [t["name"] for t in (await client.get(API)).json()] == ["Fog", "Lanterns"]
        template_id = body["template_id"]
        changed = await client.patch(
            f"{API}/{template_id}", json={"name": "Night lanterns", "negative_prompt": None}
        )
        assert changed.status_code == 200
        assert changed.json()["name"] == "Night lanterns"
        assert changed.json()["negative_prompt"] is None
        assert changed.json()["prompt"] == LANTERN["prompt"], "what is not sent stays"
        task = await client.post(
            "/api/v1/generate",
            json={
                "prompt": changed.json()["prompt"],
                "model": changed.json()["model"],
                **{k: v for k, v in changed.json()["params"].items() if v is not None},
            },
        )
        assert task.status_code == 201, "a template's fields are a valid POST /generate body"
        assert (await client.delete(f"{API}/{template_id}")).status_code == 204
        assert (await client.delete(f"{API}/{template_id}")).status_code == 404
        assert [t["name"] for t in (await client.get(API)).json()] == ["Fog"]
        entries = (await client.get("/api/v1/audit")).json()
        kept = [(e["action"], e["target"]) for e in reversed(entries) if "template" in e["action"]]
        assert kept[0] == ("template.create", template_id)
        assert kept[-1] == ("template.delete", template_id)


async def test_bad_templates_are_refused_with_the_field_named(make_studio: Any) -> None:
    async with make_studio() as studio:
        client = studio.client
        for bad, field in (
            ({**LANTERN, "name": "  "}, "name"),
            ({**LANTERN, "model": "dall-e"}, "model"),
            ({**LANTERN, "params": {"num_images": 99}}, "params.num_images"),
            ({**LANTERN, "params": {"style": "anime"}}, "params.style"),
            ({**LANTERN, "prompt": ""}, "prompt"),
        ):
            refused = await client.post(API, json=bad)
            assert refused.status_code == 400, bad
            details = refused.json()["details"]
            assert details.get("field") == field or details["errors"][0]["field"] == field
        assert (await client.post(API, json=LANTERN)).status_code == 201
        taken = await client.post(API, json={**LANTERN, "name": " Lanterns"})
        assert taken.status_code == 409 and taken.json()["error"] == "conflict"
        other = (await client.post(API, json={**LANTERN, "name": "Other"})).json()
        renamed = await client.patch(f"{API}/{other['template_id']}", json={"name": "Lanterns"})
        assert renamed.status_code == 409


async def test_the_number_of_templates_is_capped(
    make_studio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(templates, "MAX_TEMPLATES", 2)
    async with make_studio() as studio:
        for name in ("a", "b"):
            assert (await studio.client.post(API, json={**LANTERN, "name": name})).is_success
        full = await studio.client.post(API, json={**LANTERN, "name": "c"})
        assert full.status_code == 409 and "2 templates" in full.json()["message"]


async def test_each_user_has_their_own_templates(make_studio: Any) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY="script-key", **ACCOUNTS) as studio:
        await add_user(studio, "alice")
        await add_user(studio, "boss", admin=True)
        alice, boss = await signed_in(studio, "alice"), await signed_in(studio, "boss")
        hers = (await alice.post(API, json=LANTERN)).json()
        assert (await boss.post(API, json=LANTERN)).status_code == 201, "names are per user"
        assert [t["template_id"] for t in (await alice.get(API)).json()] == [hers["template_id"]]
        assert len((await boss.get(API)).json()) == 1
        for method in ("PATCH", "DELETE"):
            answer = await boss.request(method, f"{API}/{hers['template_id']}", json={})
            assert answer.status_code == 404, method
        assert (await studio.client.get(API)).status_code == 401
        script = {"X-API-Key": "script-key"}
        assert (await studio.client.get(API, headers=script)).json() == [], "not an admin's view"
        theirs = await studio.client.post(API, json=LANTERN, headers=script)
        assert theirs.status_code == 201, "the key has the shared list, apart from the users'"
        assert len((await alice.get(API)).json()) == 1
