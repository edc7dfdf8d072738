"""One settings model, read from ``config.yml`` and ``YIVIDEO_*`` environment variables.

Environment variables win over the file; nested keys use ``__``
(``YIVIDEO_ACTORS__ASR__NUM_GPUS=0.25``). The file is ``$YIVIDEO_CONFIG`` or ``./config.yml``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from yivideo.llm_settings import LLMSettings
from yivideo.security.auth import AuthSettings
from yivideo.security.ratelimit import RateLimitSettings
from yivideo.tts_servers import TTSServers


class Replicas(BaseModel):
    """How many actors serve one service: more are started while all are busy (up to
    ``max``), and those above ``min`` are stopped after ``idle_s`` without a call."""

    model_config = ConfigDict(extra="forbid")

    min: int = Field(1, ge=1, description="replicas kept once the service is used")
    max: int = Field(1, ge=1, description="replicas at most, started while all are busy")
    idle_s: float = Field(
        300.0, gt=0, description="idle seconds after which a replica above min is stopped")

    @model_validator(mode="after")
    def _min_le_max(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
        return self


class ActorOptions(BaseModel):
    """Ray resources of one service's actor (each replica gets the same)."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(1.0, ge=0, description="CPUs the actor holds")
    num_gpus: float = Field(0.0, ge=0, description="GPU fraction, e.g. 0.25; 0 on CPU nodes")
    max_concurrency: int = Field(1, ge=1, description="calls one actor runs at once")
    max_restarts: int = Field(3, ge=-1, description="restarts after the actor process dies")
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources, e.g. {ocr_node: 1}")
    replicas: Replicas = Field(
        default_factory=Replicas, description="actors of the service: a pool from min to max")


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_dirs: list[Path] = Field(
        default_factory=list, description="directories searched for local models by name"
    )
    cache_dir: Path = Field(
        Path("~/.cache/yivideo/models").expanduser(),
        description="where models assembled from packages are kept",
    )
    allow_download: bool = Field(False, description="let libraries fetch models from a hub")
    allow_local_paths: bool = Field(
        False, description="let the local CLI and Python API name a model by directory path; "
                           "requests over HTTP never can")

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("model_dirs")
    @classmethod
    def _expand_all(cls, v: list[Path]) -> list[Path]:
        return [p.expanduser() for p in v]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YIVIDEO_", env_nested_delimiter="__", extra="forbid"
    )

    namespace: str = Field("yivideo", description="Ray namespace of the named actors")
    storage_dir: Path = Field(
        Path("~/.cache/yivideo/storage").expanduser(),
        description="artifacts and uploads, one folder per workflow",
    )
    workflow_ttl_s: float = Field(86400.0, gt=0, description="how long finished state is kept")
    media_cache_max_bytes: int = Field(
        0, ge=0, description="largest size of each node's media cache (<storage_dir>/media), "
                             "least recently used files evicted first; 0: no cap")
    http_front_door: Literal["haproxy", "proxy"] = Field(
        "haproxy", description="what takes HTTP requests for Serve: HAProxy forwarding to "
                               "the ingress replica, or Serve's Python proxy")
    max_upload_mb: float = Field(2048.0, gt=0, description="largest accepted upload")
    list_page_max: int = Field(100, ge=1, description="largest page of GET /v1/workflows")
    stage_attempts: int = Field(
        3, ge=1, description="tries of a stage whose actor crashed or whose error is transient")
    retry_backoff_s: float = Field(0.5, ge=0, description="first wait between tries, doubled")
    cache_max_entries: int = Field(256, ge=0, description="stage results kept (0 = no cache)")
    cache_ttl_s: float = Field(86400.0, gt=0, description="how long a cached result is reused")
    webhook_secret: SecretStr | None = Field(None, description="HMAC key of callbacks")
    callback_allowlist: list[str] = Field(
        default_factory=list, description="private hosts/CIDRs callbacks may reach")
    callback_attempts: int = Field(5, ge=1, description="deliveries tried per callback")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    input_roots: list[Path] = Field(
        default_factory=list,
        description="folders HTTP requests may read inputs from (besides uploads); "
                    "empty: any path (single-user default)")
    url_allowlist: list[str] = Field(
        default_factory=list, description="private hosts/CIDRs input URLs may reach")
    fetch_max_mb: float = Field(2048.0, gt=0, description="largest input fetched from a URL")
    max_text_kb: float = Field(
        1024.0, gt=0, description="largest text or subtitle-file input over HTTP")
    fetch_timeout_s: float = Field(600.0, gt=0, description="time limit of one URL fetch")
    max_input_duration_s: float | None = Field(None, gt=0, description="longest input accepted")
    max_input_width: int | None = Field(None, gt=0, description="widest input accepted")
    max_input_height: int | None = Field(None, gt=0, description="tallest input accepted")
    max_active_workflows: int = Field(
        0, ge=0, description="pending/running workflows per caller (0: no limit)")
    actors: dict[str, ActorOptions] = Field(
        default_factory=dict,
        description="per service, overrides of the resources its module declares")
    models: ModelSettings = Field(default_factory=ModelSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings,
                             description="hosted LLM providers: URLs, key variables, prices")
    tts: TTSServers = Field(default_factory=TTSServers,
                            description="the user's own voice-cloning TTS servers")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @field_validator("storage_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @model_validator(mode="after")
    def _resolve_actors(self) -> Settings:
        """Every service's effective actor options: its module's defaults, then overrides."""
        from yivideo.nodes import all_services  # the catalogue imports settings

        services = {svc.name: svc for svc in all_services()}
        unknown = sorted(set(self.actors) - set(services))
        if unknown:
            raise ValueError(f"actors: unknown service(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(services))})")
        self.actors = {
            name: ActorOptions(**{**svc.actor_defaults, **_set_fields(self.actors.get(name))})
            for name, svc in sorted(services.items())}
        return self

    def for_actors(self) -> str:
        """JSON that actors rebuild these settings from, secrets included."""
        return json.dumps(self.model_dump(), default=_plain)

    def actor_options(self, service: str) -> ActorOptions:
        return self.actors[service]


def _set_fields(options: ActorOptions | None) -> dict[str, Any]:
    """The fields a config really set (not those left at ActorOptions' own defaults)."""
    return options.model_dump(include=options.model_fields_set) if options else {}


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)  # Path


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("YIVIDEO_CONFIG", "config.yml"))
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
