"""A loopback stand-in for the Hugging Face Hub's file endpoints and for plain HTTP downloads.

``HEAD|GET /{repo_id}/resolve/{revision}/{filename}`` answers the way huggingface_hub's
``hf_hub_download`` expects (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``/``X-Linked-Size`` for LFS
files, ``Content-Length``, ``Accept-Ranges``; 404 with ``X-Error-Code`` ``RepoNotFound``,
``RevisionNotFound`` or ``EntryNotFound``). ``GET|HEAD /files/{name}`` serves plain files with Range
support (206), an ``ETag`` and ``Last-Modified`` (a Range whose ``If-Range`` no longer matches gets the
whole new file, 200), and can misbehave on purpose: cut a response short, announce a short
``Content-Length``, trickle the body, redirect elsewhere, or send no validators. Every request is
logged. The server binds ``host`` (127.0.0.1; 127.0.0.2 is another loopback host on Linux) on a free
port, runs in a daemon thread and stops on ``close()`` or after ``max_lifetime_s``.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int


@dataclass
class _Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit
    commits: dict[str, dict[str, tuple[bytes, bool]]] = field(
        default_factory=dict
    )  # commit -> file -> (data, lfs)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """Serve Hub repositories and plain files on 127.0.0.1; use as a context manager or call close()."""

    def __init__(self, max_lifetime_s: float = 120.0, host: str = "127.0.0.1"):
        self.repos: dict[str, _Repo] = {}
        self.files: dict[str, bytes] = {}
        self.modified: dict[str, float] = {}  # name -> when add_file last set it (Last-Modified)
        self.requests: list[Request] = []
        self._cuts: dict[str, list[int]] = {}  # name -> [cut after n bytes, responses left to cut]
        self.redirects: dict[str, str] = {}  # name -> Location
        self.short_lengths: dict[str, int] = {}  # name -> announced (and sent) Content-Length
        self.trickles: dict[str, float] = {}  # name -> seconds between single bytes
        self.without_validators: set[str] = set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(max_lifetime_s, self.close)
        self._timer.daemon = True
        self._timer.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- content -----------------------------------------------------------------------------

    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", lfs: bool = True) -> str:
        """Add a commit on ``branch`` with ``files`` (on top of the branch's files); returns its hash."""
        repo = self.repos.setdefault(repo_id, _Repo())
        parent = repo.branches.get(branch)
        tree = dict(repo.commits[parent]) if parent else {}
        tree.update({name: (data, lfs) for name, data in files.items()})
        commit = hashlib.sha1(f"{repo_id}{branch}{len(repo.commits)}{sorted(tree)}".encode()).hexdigest()
        repo.commits[commit] = tree
        repo.branches[branch] = commit
        return commit

    def add_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/files/{name}``; returns the URL."""
        self.files[name] = data
        self.modified[name] = time.time() + len(self.modified)  # a new version: a new Last-Modified
        return f"{self.url}/files/{name}"

    def redirect(self, name: str, location: str) -> str:
        """``/files/{name}`` answers 302 to ``location``; returns the redirecting URL."""
        self.redirects[name] = location
        return f"{self.url}/files/{name}"

    def cut_after(self, name: str, nbytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``/files/{name}`` announce the full length but stop after ``nbytes``."""
        self._cuts[name] = [nbytes, times]

    def log(self, method: str | None = None, path_contains: str = "") -> list[Request]:
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and path_contains in r.path
            ]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class _Handler(BaseHTTPRequestHandler):
    server_version = "hubserver/1"
    timeout = 10  # a stuck client cannot hold a thread for long

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/files/"):
            name = unquote(path[len("/files/") :])
            if name in self.hub.redirects:
                return self._error(302, {"Location": self.hub.redirects[name]})
            if name not in self.hub.files:
                return self._error(404, {})
            data, headers, honour_range = self.hub.files[name], {}, True
            if name not in self.hub.without_validators:
                headers = {
                    "ETag": f'"{hashlib.sha256(data).hexdigest()[:16]}"',
                    "Last-Modified": email.utils.formatdate(self.hub.modified[name], usegmt=True),
                }
                # If-Range no longer matches: the file changed since, so send all of the new one.
                honour_range = self.headers.get("If-Range") in (None, *headers.values())
            return self._send(data, headers, body, cut_key=name, honour_range=honour_range)
        match = _RESOLVE.match(path)
        if not match:
            return self._error(404, {})
        repo = self.hub.repos.get(match["repo"])
        if repo is None:
            return self._error(
                404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
            )
        rev = unquote(match["rev"])
        commit = repo.branches.get(rev, rev if rev in repo.commits else None)
        if commit is None:
            return self._error(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
        filename = unquote(match["file"])
        if filename not in repo.commits[commit]:
            return self._error(
                404,
                {
                    "X-Error-Code": "EntryNotFound",
                    "X-Error-Message": "Entry not found",
                    "X-Repo-Commit": commit,
                },
            )
        data, lfs = repo.commits[commit][filename]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"'}
        if lfs:
            sha = hashlib.sha256(data).hexdigest()
            headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)), "ETag": f'"{sha}"'})
        self._send(data, headers, body, cut_key=None)

    def _error(self, status: int, headers: dict[str, str]) -> None:
        self.hub._record(Request(self.command, self.path, self.headers.get("Range"), status))
        payload = b'{"error": "not found"}'
        self.send_response(status)
        for key, value in {
            **headers,
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(payload)

    def _send(
        self, data: bytes, headers: dict[str, str], body: bool, cut_key: str | None, honour_range: bool = True
    ) -> None:
        status, start, end = 200, 0, len(data)
        range_header = self.headers.get("Range")
        if range_header and honour_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if not m or int(m[1]) >= len(data):
                self.hub._record(Request(self.command, self.path, range_header, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = int(m[1]), (int(m[2]) + 1 if m[2] else len(data))
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
        chunk = data[start:end]
        if cut_key in self.hub.short_lengths:
            chunk = chunk[: self.hub.short_lengths[cut_key]]
        self.hub._record(Request(self.command, self.path, range_header, status))
        self.send_response(status)
        headers = {
            **headers,
            "Content-Length": str(len(chunk)),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not body:
            return
        if cut_key in self.hub.trickles:
            for i in range(len(chunk)):
                self.wfile.write(chunk[i : i + 1])
                self.wfile.flush()
                time.sleep(self.hub.trickles[cut_key])
            return
        cut = self.hub._cuts.get(cut_key) if cut_key else None
        if cut and cut[1] > 0:
            cut[1] -= 1
            self.wfile.write(chunk[: cut[0]])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)
