"""Analyzers, pluggable by name (``model`` of a batch; ``GET /available_models``).

An analyzer turns each image into measurements, flags and finding sentences
(``analyze_image``) and may add one answer for the whole batch
(``summarize``, e.g. a vision-language model's reply to the user query).
Register one with ``@register``. The built-in ones are composed here:
``inspector`` is the default and needs no model download; it and
``openai-compatible`` read text too when the ``ocr`` extra is installed
(vision_pipeline.analyzers.ocr), and ``ocr`` always does.
"""
from __future__ import annotations

from typing import Any

from vision_pipeline.analyzers import ocr
from vision_pipeline.analyzers.base import Analyzer, BatchContext, ImageAnalysis, ModelError
from vision_pipeline.analyzers.inspector import InspectorAnalyzer
from vision_pipeline.analyzers.openai_compatible import OpenAICompatibleAnalyzer

__all__ = ["DEFAULT", "Analyzer", "BatchContext", "ImageAnalysis", "ModelError", "catalogue", "get", "names",
           "register"]

_ANALYZERS: dict[str, Analyzer] = {}
DEFAULT = "inspector"


def register(analyzer: type[Analyzer] | Analyzer) -> type[Analyzer] | Analyzer:
    """Offer ``analyzer`` (a class, instantiated here, or an instance) under its ``name``. Usable as a decorator."""
    instance = analyzer() if isinstance(analyzer, type) else analyzer
    _ANALYZERS[instance.name] = instance
    return analyzer


register(InspectorAnalyzer(read_text=ocr.add_text_when_enabled))
register(ocr.OCRAnalyzer())
register(OpenAICompatibleAnalyzer(read_text=ocr.add_text_when_enabled))


def get(name: str) -> Analyzer:
    """The analyzer called ``name``; LookupError (naming the known ones) for any other name."""
    analyzer = _ANALYZERS.get(name)
    if analyzer is None:
        raise LookupError(f"Unknown model '{name}'. Use one of: {', '.join(names())}.")
    return analyzer


def names() -> list[str]:
    return sorted(_ANALYZERS)


def catalogue() -> list[dict[str, Any]]:
    """What GET /available_models lists."""
    rows = []
    for name in names():
        analyzer = _ANALYZERS[name]
        ok, why = analyzer.available()
        rows.append({"id": name, "name": analyzer.label, "description": analyzer.description,
                     "default": name == DEFAULT, "available": ok, **({"reason": why} if why else {})})
    return rows
