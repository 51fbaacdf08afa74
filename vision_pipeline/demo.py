"""A stand-in for the external document API of seeds 000/001, on loopback.

``./manage vision demo-api`` serves it with a few generated inspection photos
and a descriptions file, so the README walkthrough runs the whole flow on one
machine; the tests use the same server (with its failure switches) as the real
HTTP server the pipeline talks to.

- ``GET  /api/v1/documents/vision_analysis?is_processed=false&page=N&page_size=M``
  (Bearer key required) — the seed's envelope, paginated, unprocessed only;
- ``GET  /files/<name>`` — the documents;
- ``POST /api/v1/documents/vision_analysis/upload`` (Bearer key required) —
  records the multipart report, marks the analysis processed, and (with
  ``reports_dir``) saves the HTML there.
"""
from __future__ import annotations

import json
import threading
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlsplit

GET_PATH = "/api/v1/documents/vision_analysis"
POST_PATH = "/api/v1/documents/vision_analysis/upload"
DEMO_ORGANIZATION_ID = "38162954-469A-40BC-B619-3E9F71DE6DB9"
DEMO_KEY = "demo-jwt-token"
HOLD_SECONDS = 60


class DemoExternalAPI:
    def __init__(self, *, key: str = DEMO_KEY, host: str = "127.0.0.1", port: int = 0,
                 reports_dir: str | Path | None = None):
        self.key = key
        self.analyses: list[dict[str, Any]] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        self.uploads: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.reports_dir = Path(reports_dir) if reports_dir else None
        # failure switches (tests)
        self.get_status: int | None = None  # answer every GET of the list with this status
        self.envelope: Callable[[int, int], Any] | None = None  # (page, page_size) -> body to send instead
        self.upload_status: dict[str, int] = {}  # vision_analysis_id -> status to answer its upload with
        self.ignore_paging = False  # answer every page with the first one (a server that ignores `page`)
        self.file_delay = 0.0  # seconds each /files/ answer waits (benchmarks: download concurrency)
        # file name (as in the URL) -> an event its answer waits for, at most HOLD_SECONDS
        # (tests: an image still downloading while the first ones are analysed)
        self.hold: dict[str, threading.Event] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.api = self
        self.port = self.httpd.server_address[1]
        self.host = host
        self.thread: threading.Thread | None = None

    # -- content ----------------------------------------------------------
    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def get_url(self) -> str:
        return self.url(GET_PATH)

    @property
    def post_url(self) -> str:
        return self.url(POST_PATH)

    def add_file(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.files[name] = (body, content_type)
        return self.url(f"/files/{quote(name)}")

    def add_analysis(self, *, images: list[tuple[str, bytes]], descriptions: dict | bytes | None = None,
                     user_query: str = "Analyze these images for defects and anomalies",
                     organization_id: str = DEMO_ORGANIZATION_ID, run_code: str | None = None,
                     document_urls: dict[str, str] | None = None) -> str:
        """Add an unprocessed analysis; returns its vision_analysis_id.
        ``document_urls`` overrides the URL of a named document (e.g. a private address)."""
        analysis_id = str(uuid.uuid4()).upper()
        number = len(self.analyses) + 1
        documents = []
        for name, body in images:
            url = (document_urls or {}).get(name) or self.add_file(f"{number}_{name}", body, "image/jpeg")
            documents.append(self._document(analysis_id, url, name, "image"))
        if descriptions is not None:
            raw = descriptions if isinstance(descriptions, bytes) else json.dumps(descriptions).encode()
            name = f"descriptions_VISION_RUN_{number:03d}.json"
            documents.append(self._document(analysis_id, self.add_file(f"{number}_{name}", raw, "application/json"),
                                            name, "json"))
        self.analyses.append({
            "vision_analysis_id": analysis_id,
            "vision_analysis_run_code": run_code or f"VISION_RUN_{number:03d}",
            "is_processed": False,
            "organization_id": organization_id,
            "organization_name": "LexCorp",
            "user_query": user_query,
            "created_date": "2025-11-21T18:55:19Z",
            "documents": documents,
        })
        return analysis_id

    @staticmethod
    def _document(analysis_id: str, url: str, name: str, doc_type: str) -> dict[str, Any]:
        return {"vision_analysis_documents_id": str(uuid.uuid4()).upper(), "vision_analysis_id": analysis_id,
                "document_id": str(uuid.uuid4()).upper(), "document_path": url, "document_name": name,
                "is_input": True, "document_type": doc_type}

    def add_demo_analyses(self, count: int = 2, images_per_analysis: int = 3, *, size=(1600, 1200)) -> None:
        """Generated inspection photos (vision_pipeline.samples) with descriptions."""
        from vision_pipeline import samples

        kinds = ["rust", "cracks", "clean", "blurred", "cast", "noisy", "dark", "bright"]
        captions = {"rust": "Port side hull section near waterline", "cracks": "Starboard deck plating",
                    "clean": "Bulkhead after repaint", "blurred": "Engine room, handheld shot",
                    "cast": "Cargo hold under sodium lights", "noisy": "Ballast tank, low light",
                    "dark": "Void space", "bright": "Deck in direct sun"}
        for a in range(count):
            images, descriptions = [], {}
            for i in range(images_per_analysis):
                kind = kinds[(a * images_per_analysis + i) % len(kinds)]
                name = f"oceanix_{a + 1:02d}_{i + 1:02d}_{kind}.jpg"
                images.append((name, samples.encode(samples.variant(kind, *size, seed=a * 10 + i))))
                descriptions[name] = captions[kind]
            self.add_analysis(images=images, descriptions=descriptions)

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> DemoExternalAPI:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> DemoExternalAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def unprocessed(self) -> list[dict[str, Any]]:
        return [a for a in self.analyses if not a["is_processed"]]


class _Handler(BaseHTTPRequestHandler):
    server_version = "demo-external-api"

    @property
    def api(self) -> DemoExternalAPI:
        return self.server.api

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes | dict, content_type: str = "application/json") -> None:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.api.key}":
            return True
        self._send(401, {"code": 401, "status": "error", "message": "invalid or missing bearer token"})
        return False

    def do_GET(self):  # noqa: N802
        api = self.api
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with api.lock:
            api.requests.append({"method": "GET", "path": parts.path, "query": query,
                                 "authorization": self.headers.get("Authorization")})
        if parts.path == GET_PATH:
            if not self._authorized():
                return
            if api.get_status:
                return self._send(api.get_status, {"code": api.get_status, "status": "error"})
            page = max(1, int(query.get("page", "1") or 1))
            size = max(1, int(query.get("page_size", "50") or 50))
            if api.envelope is not None:
                return self._send(200, json.dumps(api.envelope(page, size)).encode())
            with api.lock:
                pending = api.unprocessed
                start = 0 if api.ignore_paging else (page - 1) * size
                items = pending[start:start + size]
            return self._send(200, {"code": 200, "status": "success", "data": {
                "page": page, "page_size": size, "total": len(pending), "vision_analysis": items}})
        if parts.path.startswith("/files/"):
            from urllib.parse import unquote

            name = unquote(parts.path[len("/files/"):])
            if name in api.hold:
                api.hold[name].wait(HOLD_SECONDS)
            entry = api.files.get(name)
            if entry is None:
                return self._send(404, b"not found", "text/plain")
            with api.lock:
                api.in_flight += 1
                api.max_in_flight = max(api.max_in_flight, api.in_flight)
            try:
                if api.file_delay:
                    import time

                    time.sleep(api.file_delay)
                return self._send(200, entry[0], entry[1])
            finally:
                with api.lock:
                    api.in_flight -= 1
        self._send(404, b"not found", "text/plain")

    def do_POST(self):  # noqa: N802
        api = self.api
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if parts.path != POST_PATH:
            return self._send(404, b"not found", "text/plain")
        if not self._authorized():
            return
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode() + body)
        fields, files = {}, {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                files[name] = {"filename": filename, "content_type": part.get_content_type(), "body": payload}
            else:
                fields[name] = payload.decode()
        record = {"authorization": self.headers.get("Authorization"), "fields": fields, "files": files}
        analysis_id = fields.get("vision_analysis_id", "")
        with api.lock:
            api.uploads.append(record)
            status = api.upload_status.get(analysis_id, 200)
            if status == 200:
                for analysis in api.analyses:
                    if analysis["vision_analysis_id"] == analysis_id:
                        analysis["is_processed"] = True
        if status == 200 and api.reports_dir is not None and "file" in files:
            api.reports_dir.mkdir(parents=True, exist_ok=True)
            (api.reports_dir / Path(files["file"]["filename"]).name).write_bytes(files["file"]["body"])
        self._send(status, {"code": status, "status": "success" if status == 200 else "error"})
