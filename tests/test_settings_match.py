"""Settings mean what they say: a running named actor built from other settings is refused,
naming the keys; service actors never hold a secret."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import ray

from yivideo.engine import Controller, get_controller
from yivideo.errors import ConfigError, SettingsMismatch
from yivideo.runtime import (
    actor_name,
    check_settings,
    controller_view,
    get_service_actor,
    service_settings_json,
    service_view,
    stop_actors,
)
from yivideo.security.auth import new_api_key
from yivideo.settings import Settings

from .conftest import wait_until

WEBHOOK = "whsec_" + "c2VjcmV0LW9mLXRoaXMtdGVzdC1vbmx5LWZvci1tYXRjaGluZw=="
JWT = "j" * 40


def _space() -> str:
    return f"match-{uuid.uuid4().hex[:8]}"


def _secret_settings(**more) -> Settings:
    _, entry = new_api_key("alice")
    return Settings(**{
        "webhook_secret": WEBHOOK, "rate_limit": {"storage_uri": "redis://u:pw@h:6379"},
        "auth": {"enabled": True, "api_keys": [entry.model_dump()], "jwt_secret": JWT}, **more})


def test_differing_keys_are_named_and_secrets_never_shown() -> None:
    with pytest.raises(SettingsMismatch) as info:
        check_settings("service 'asr'", {"actors.asr.num_gpus": 0.0, "webhook_secret": "ab"},
                       {"actors.asr.num_gpus": 0.25, "webhook_secret": "cd"}, "yivideo stop")
    err = info.value
    assert isinstance(err, ConfigError) and err.code == "settings_mismatch"
    assert "the running service 'asr' was started with actors.asr.num_gpus=0.0" in err.message
    assert "these settings say 0.25" in err.message and "yivideo stop" in err.message
    assert "ab" not in err.message and "cd" not in err.message
    assert [d["loc"] for d in err.details] == ["actors.asr.num_gpus", "webhook_secret"]
    check_settings("controller", {"a": [1]}, {"a": [1]}, "yivideo stop")  # equal: no error


def test_views_leave_out_what_front_doors_decide() -> None:
    base = controller_view(Settings())
    other_door = controller_view(_secret_settings(max_active_workflows=3, input_roots=["/x"]))
    assert {k: v for k, v in other_door.items() if k != "webhook_secret"} == {
        k: v for k, v in base.items() if k != "webhook_secret"}
    assert other_door["webhook_secret"] != base["webhook_secret"]
    assert WEBHOOK not in json.dumps(other_door)
    assert "actors.asr.num_gpus" in base and "models.model_dirs" in base
    assert set(service_view(Settings(), "asr")) == {
        k for k in base if k.startswith(("actors.asr.", "models."))}


def test_service_settings_json_holds_no_secret() -> None:
    settings = _secret_settings()
    sent = service_settings_json(settings)
    for secret in (WEBHOOK, JWT, settings.auth.api_keys[0].sha256, "pw@h"):
        assert secret not in sent
    # the environment cannot fill them in again (conftest sets YIVIDEO_WEBHOOK_SECRET)
    rebuilt = Settings.model_validate_json(sent)
    assert rebuilt.webhook_secret is None and rebuilt.auth.api_keys == []
    assert rebuilt.models == settings.models and rebuilt.actors == settings.actors


@pytest.mark.usefixtures("ray_cluster")
class TestOnTheCluster:
    def test_a_second_service_actor_with_other_settings_is_refused(self, tmp_path) -> None:
        space = _space()
        first = Settings(namespace=space, actors={"diagnostics": {"num_cpus": 0}})
        actor = get_service_actor("diagnostics", first)
        try:
            ray.get(actor.health.remote(), timeout=60)
            same = get_service_actor("diagnostics", Settings(
                namespace=space, actors={"diagnostics": {"num_cpus": 0}}))
            assert same._actor_id == actor._actor_id
            more_cpu = Settings(namespace=space, actors={"diagnostics": {"num_cpus": 0.5}})
            with pytest.raises(SettingsMismatch, match=r"actors\.diagnostics\.num_cpus=0\.0, "
                                                       r"these settings say 0\.5"):
                get_service_actor("diagnostics", more_cpu)
            models = Settings(namespace=space, actors={"diagnostics": {"num_cpus": 0}},
                              models={"model_dirs": [str(tmp_path)]})
            with pytest.raises(SettingsMismatch, match=r"models\.model_dirs=\[\]") as info:
                get_service_actor("diagnostics", models)
            assert [d["loc"] for d in info.value.details] == ["models.model_dirs"]
        finally:
            ray.kill(actor, no_restart=True)

    def test_the_service_actor_holds_no_secret(self) -> None:
        settings = _secret_settings(namespace=_space(),
                                    actors={"diagnostics": {"num_cpus": 0}})
        actor = get_service_actor("diagnostics", settings)
        try:
            held = ray.get(actor.__ray_call__.remote(lambda host: host.settings.for_actors()),
                           timeout=60)
        finally:
            ray.kill(actor, no_restart=True)
        view = json.loads(held)
        assert view["webhook_secret"] is None and view["auth"]["jwt_secret"] is None
        assert view["auth"]["api_keys"] == [] and "pw@h" not in view["rate_limit"]["storage_uri"]
        assert WEBHOOK not in held and JWT not in held

    def test_a_second_controller_with_other_settings_is_refused(self, tmp_path) -> None:
        space = _space()
        first = Settings(namespace=space, storage_dir=tmp_path, stage_attempts=2)
        controller = get_controller(first)
        try:
            assert ray.get(controller.ping.remote(), timeout=60) == "ok"
            held = ray.get(controller.__ray_call__.remote(lambda c: c.settings.for_actors()))
            assert json.loads(held)["auth"]["api_keys"] == []  # the controller needs none
            # another front door's own limits and credentials are its business
            door = _secret_settings(namespace=space, storage_dir=tmp_path, stage_attempts=2,
                                    webhook_secret=first.webhook_secret,
                                    max_active_workflows=2, input_roots=[str(tmp_path)])
            assert get_controller(door)._actor_id == controller._actor_id
            with pytest.raises(SettingsMismatch, match=r"stage_attempts=2, these settings say 3"):
                get_controller(Settings(namespace=space, storage_dir=tmp_path, stage_attempts=3))
            with pytest.raises(SettingsMismatch, match="webhook_secret") as info:
                get_controller(Settings(namespace=space, storage_dir=tmp_path,
                                        stage_attempts=2, webhook_secret=WEBHOOK))
            assert WEBHOOK not in info.value.message
        finally:
            ray.kill(controller, no_restart=True)

    def test_the_controller_fails_a_stage_on_a_service_built_otherwise(self, tmp_path) -> None:
        space = _space()
        actor = get_service_actor("diagnostics", Settings(
            namespace=space, actors={"diagnostics": {"num_cpus": 0}}))
        settings = Settings(namespace=space, storage_dir=tmp_path,
                            actors={"diagnostics": {"num_cpus": 0.25}})
        flow = {"inputs": {}, "options": {"cache": False}, "stages": {
            "nap": {"node": "diagnostics.sleep", "params": {"seconds": 0.01}}}}

        async def scenario() -> dict:
            controller = Controller(settings.for_actors())
            wid = await controller.submit(flow)
            while controller.get(wid)["status"] not in ("succeeded", "failed"):
                await controller.wait(wid, 1.0)
            return controller.get(wid)

        try:
            state = asyncio.run(scenario())
        finally:
            ray.kill(actor, no_restart=True)
        stage = state["stages"]["nap"]
        assert state["status"] == "failed" and stage["error"]["code"] == "settings_mismatch"
        assert "actors.diagnostics.num_cpus=0.0" in stage["error"]["message"]
        assert [a["reason"] for a in stage["attempts"]] == ["error"]  # not retried

    def test_stop_removes_the_named_actors(self, tmp_path) -> None:
        settings = Settings(namespace=_space(), storage_dir=tmp_path,
                            actors={"diagnostics": {"num_cpus": 0}})
        ray.get(get_service_actor("diagnostics", settings).health.remote(), timeout=60)
        ray.get(get_controller(settings).ping.remote(), timeout=60)
        assert stop_actors(settings, ["diagnostics", "asr"]) == [actor_name("diagnostics")]
        assert "controller" in stop_actors(settings)
        wait_until(lambda: not _running(actor_name("diagnostics"), settings.namespace))
        wait_until(lambda: not _running("controller", settings.namespace))


def _running(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True
