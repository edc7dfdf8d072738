"""The ``llm`` settings section: hosted OpenAI-compatible providers and their defaults.

Each preset (OpenAI, DeepSeek, Gemini, Zhipu, Ollama, vLLM) has a base URL, the NAME of
the environment variable that holds its key, a default model, prices per 1k tokens and a
timeout. A config overrides any of them key by key (``llm.providers.deepseek.base_url``);
a provider's base URL comes from here (or ``<PROVIDER>_BASE_URL`` on the node), never from
a request, so a caller cannot send a key elsewhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PRESETS", "LLMSettings", "ProviderSettings"]


class ProviderSettings(BaseModel):
    """One OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(..., pattern=r"^https?://", description="the API's /v1 root")
    key_env: str | None = Field(
        ..., pattern=r"^[A-Z][A-Z0-9_]{0,63}$",
        description="NAME of the environment variable holding the key; null: no key needed")
    model: str = Field(..., min_length=1, description="model asked when a request names none")
    price_input_per_1k: float | None = Field(None, ge=0, description="cost of 1k prompt tokens")
    price_output_per_1k: float | None = Field(None, ge=0, description="cost of 1k answer tokens")
    timeout_s: float = Field(60.0, gt=0, le=600, description="one request's time limit")


#: The built-in presets; a config's ``llm.providers.<name>`` overrides them key by key.
PRESETS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "key_env": "OPENAI_API_KEY",
               "model": "gpt-4o-mini", "price_input_per_1k": 0.00015,
               "price_output_per_1k": 0.0006},
    "deepseek": {"base_url": "https://api.deepseek.com/v1", "key_env": "DEEPSEEK_API_KEY",
                 "model": "deepseek-chat", "price_input_per_1k": 0.00027,
                 "price_output_per_1k": 0.0011},
    "gemini": {"base_url": "https://generativelanguage.googleapis.com/v1beta/openai/",
               "key_env": "GEMINI_API_KEY", "model": "gemini-2.0-flash",
               "price_input_per_1k": 0.0001, "price_output_per_1k": 0.0004},
    "zhipu": {"base_url": "https://open.bigmodel.cn/api/paas/v4/", "key_env": "ZHIPUAI_API_KEY",
              "model": "glm-4-flash", "price_input_per_1k": 0.0, "price_output_per_1k": 0.0},
    "ollama": {"base_url": "http://localhost:11434/v1", "key_env": None, "model": "qwen2.5:7b",
               "timeout_s": 300.0},
    "vllm": {"base_url": "http://localhost:8000/v1", "key_env": None,
             "model": "Qwen/Qwen2.5-7B-Instruct", "timeout_s": 300.0},
}


class LLMSettings(BaseModel):
    """Hosted providers (presets merged with the config) and the retry policy."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict, description="per preset: base_url, key_env, model, prices, "
                                          "timeout_s (keys left out keep the preset's)")
    max_retries: int = Field(3, ge=0, le=10, description="retries on 429/5xx/timeouts")

    @model_validator(mode="before")
    @classmethod
    def _merge_presets(cls, data: Any) -> Any:
        """Every preset, with what the config sets for it on top; unknown names refused."""
        if not isinstance(data, dict):
            return data
        given = data.get("providers") or {}
        if not isinstance(given, dict):
            return data
        unknown = sorted(set(given) - set(PRESETS))
        if unknown:
            raise ValueError(f"llm.providers: unknown provider(s) {', '.join(unknown)} "
                             f"(known: {', '.join(PRESETS)})")
        merged = {}
        for name, preset in PRESETS.items():
            entry = given.get(name) or {}
            if isinstance(entry, BaseModel):
                entry = entry.model_dump(exclude_unset=True)
            merged[name] = {**preset, **entry}
        return {**data, "providers": merged}
