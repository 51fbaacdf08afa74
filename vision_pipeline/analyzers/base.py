"""What every analyzer shares: the result of one image (``ImageAnalysis``),
what it knows of the batch (``BatchContext``), the base class (``Analyzer``)
and the handled failure of a model (``ModelError``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from vision_pipeline.images import LoadedImage


class ModelError(RuntimeError):
    """A model or engine an analyzer needs failed or is missing: the batch fails with this message."""


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
