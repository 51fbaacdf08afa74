"""``openai-compatible``: the images, the user query and the descriptions go
to any OpenAI-compatible chat-completions endpoint that accepts images
(``VISION_OPENAI_BASE_URL``, ``VISION_OPENAI_MODEL``, ``VISION_OPENAI_API_KEY``),
and its answer goes into the report beside the inspector's measurements
(which are still made: they are cheap beside a model call and back the
answer with numbers).

One request per batch: images as base64 JPEG data URIs (long side ≤ 1024 px),
through jobsite.http like every call out. The endpoint is an operator's
setting, so it is allowed past the SSRF guard for this call (a local model
server on loopback, say); nothing a user sends can change it.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from jobsite import http
from vision_pipeline.analyzers.base import BatchContext, ImageAnalysis, ModelError
from vision_pipeline.analyzers.inspector import InspectorAnalyzer
from vision_pipeline.images import jpeg_base64

MAX_IMAGES_PER_REQUEST = 20
MAX_ANSWER_CHARS = 20_000


def _endpoint() -> str:
    base = settings.VISION_OPENAI_BASE_URL.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


class OpenAICompatibleAnalyzer(InspectorAnalyzer):
    name = "openai-compatible"
    label = "OpenAI-compatible vision model"
    description = ("Sends the images, the query and the descriptions to the configured chat-completions endpoint "
                   "and reports its answer, with the inspector's measurements.")

    def available(self) -> tuple[bool, str]:
        if not (settings.VISION_OPENAI_BASE_URL and settings.VISION_OPENAI_MODEL):
            return False, "Set VISION_OPENAI_BASE_URL and VISION_OPENAI_MODEL."
        return True, ""

    def summarize(self, context: BatchContext, results: list[tuple[str, ImageAnalysis]]) -> dict[str, Any]:
        ok, why = self.available()
        if not ok:
            raise ModelError(f"The openai-compatible model is not configured: {why}")
        images = context.image_paths[:MAX_IMAGES_PER_REQUEST]
        lines = [f"User query: {context.user_query or 'Describe what you see and any defects.'}", "",
                 "Images, in order:"]
        for index, (filename, _path) in enumerate(images, 1):
            description = context.descriptions.get(filename, "")
            lines.append(f"{index}. {filename}" + (f" — {description}" if description else ""))
        if len(context.image_paths) > len(images):
            lines.append(f"(only the first {len(images)} of {len(context.image_paths)} images are attached)")
        content: list[dict[str, Any]] = [{"type": "text", "text": "\n".join(lines)}]
        for _filename, path in images:
            content.append({"type": "image_url",
                            "image_url": {"url": f"data:image/jpeg;base64,{jpeg_base64(path)}"}})
        body = {
            "model": settings.VISION_OPENAI_MODEL,
            "messages": [
                {"role": "system", "content": "You are an inspection assistant. Answer the user's query about the "
                                              "images precisely, citing images by their number and file name."},
                {"role": "user", "content": content},
            ],
            "temperature": 0,
        }
        headers = {"Content-Type": "application/json"}
        if settings.VISION_OPENAI_API_KEY:
            headers["Authorization"] = f"Bearer {settings.VISION_OPENAI_API_KEY}"
        target = urlsplit(_endpoint())
        try:
            response = http.request(
                "POST", _endpoint(), headers=headers, data=json.dumps(body).encode(), retry_post=True,
                timeout=(10.0, float(settings.VISION_OPENAI_TIMEOUT_SECONDS)), max_bytes=4 * 1024 * 1024,
                allow_hosts=[target.netloc] if target.netloc else [],
            )
            payload = response.json()
            answer = payload["choices"][0]["message"]["content"]
        except http.OutboundHTTPError as exc:
            raise ModelError(f"The model endpoint failed: {exc}") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError("The model endpoint answered something that is not a chat completion.") from None
        if isinstance(answer, list):  # content parts
            answer = "".join(part.get("text", "") for part in answer if isinstance(part, dict))
        return {"answer": str(answer)[:MAX_ANSWER_CHARS], "model": str(payload.get("model")
                                                                         or settings.VISION_OPENAI_MODEL)}
