"""Analyzers, pluggable by name (``model`` of a batch; ``GET /available_models``).

An analyzer turns each image into measurements, flags and finding sentences
(``analyze_image``) and may add one answer for the whole batch
(``summarize``, e.g. a vision-language model's reply to the user query).
Register one with ``@register``; ``inspector`` is the default and needs no
model download (it reads text too when the ``ocr`` extra is installed:
vision_pipeline.analyzers.ocr).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from vision_pipeline.images import LoadedImage


@dataclass
class ImageAnalysis:
    metrics: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


@dataclass
class BatchContext:
    """What the analyzer knows of the batch: the query, the descriptions and the images' paths."""

    user_query: str = ""
    descriptions: dict[str, str] = field(default_factory=dict)
    image_paths: list[tuple[str, str]] = field(default_factory=list)  # (filename, path) of the readable images
    deadline: float | None = None  # time.monotonic() value the analysis must finish by


class Analyzer:
    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""

    def available(self) -> tuple[bool, str]:
        """(usable now, why not)."""
        return True, ""

    def analyze_image(self, image: LoadedImage, *, description: str, context: BatchContext) -> ImageAnalysis:
        raise NotImplementedError

    def summarize(self, context: BatchContext, results: list[tuple[str, ImageAnalysis]]) -> dict[str, Any]:
        """A batch-level answer ({} for none): ``{"answer": ..., "model": ...}``."""
        return {}


_ANALYZERS: dict[str, Analyzer] = {}
DEFAULT = "inspector"


def register(cls: type[Analyzer]) -> type[Analyzer]:
    _ANALYZERS[cls.name] = cls()
    return cls


def _load_builtins() -> None:
    from vision_pipeline.analyzers import inspector, ocr, openai_compatible  # noqa: F401


def get(name: str) -> Analyzer:
    _load_builtins()
    try:
        return _ANALYZERS[name]
    except KeyError:
        raise LookupError(f"Unknown model '{name}'. Use one of: {', '.join(names())}.") from None


def names() -> list[str]:
    _load_builtins()
    return sorted(_ANALYZERS)


def catalogue() -> list[dict[str, Any]]:
    """What GET /available_models lists."""
    _load_builtins()
    rows = []
    for name in names():
        analyzer = _ANALYZERS[name]
        ok, why = analyzer.available()
        rows.append({"id": name, "name": analyzer.label, "description": analyzer.description,
                     "default": name == DEFAULT, "available": ok, **({"reason": why} if why else {})})
    return rows


def openai_compatible_error() -> type[Exception]:
    """The error type analyzers raise when a model endpoint fails (a handled failure)."""
    from vision_pipeline.analyzers.openai_compatible import ModelError

    return ModelError
