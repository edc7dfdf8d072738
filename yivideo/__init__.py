"""YiVideo: configuration-driven AI video processing on Ray."""

from yivideo.client import (
    WorkflowResult,
    build_request,
    cancel,
    download,
    get,
    run,
    submit,
    validate_request,
    wait,
)
from yivideo.errors import ConfigError, YiVideoError
from yivideo.runtime import connect

__all__ = [
    "ConfigError", "WorkflowResult", "YiVideoError", "build_request", "cancel", "connect",
    "download", "get", "run", "submit", "validate_request", "wait",
]
