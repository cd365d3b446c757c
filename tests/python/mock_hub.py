"""A stand-in for the Hugging Face Hub on 127.0.0.1, so no test touches the real one.

It answers what `hf-hub` (vllmd) and Python's `huggingface_hub` ask, as the Hub does:
- `GET /api/models/{org}/{name}/revision/{rev}`: the commit (`sha`) and the file list (`siblings`);
- `GET /api/models/{org}/{name}/tree/{rev}`: the file list with sizes and LFS sha256s;
- `GET|HEAD /{org}/{name}/resolve/{rev}/{file}`: small files directly, with `ETag` (the git
  blob id) and `X-Repo-Commit`; LFS files (`*.safetensors`, `*.gguf`) as a 302 to an absolute
  CDN address, with `X-Linked-Etag` (the sha256), `X-Linked-Size` and `X-Repo-Commit`;
- `GET|HEAD /cdn/{sha256}`: the LFS content;
- `Range: bytes=a-b` / `bytes=a-` on every file (206 with `Content-Range`);
- 401 for a wrong token (when a token is required), 404 for an unknown repo, revision or file.

`requests` records every request as (method, path, range header); `drop_once` names a file whose
first full download is cut after half its bytes, to test that downloads resume.
"""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".gguf")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, repo_id: str, files: dict[str, bytes]):
        self.repo_id = repo_id
        self.files = files
        # A stable 40-hex commit id for this content.
        h = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            h.update(name.encode() + hashlib.sha256(files[name]).digest())
        self.commit = h.hexdigest()

    @classmethod
    def from_dir(cls, repo_id: str, folder: Path, skip=("expected.json",)):
        return cls(repo_id, {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name not in skip})


class MockHub:
    def __init__(self, repos: list[Repo], token: str | None = None, drop_once: str | None = None):
        self.repos = {r.repo_id: r for r in repos}
        self.token = token
        self.drop_once = drop_once
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def paths_requested(self) -> list[str]:
        with self.lock:
            return [p for _, p, _ in self.requests]

    def blob(self, sha256: str) -> bytes | None:
        for r in self.repos.values():
            for data in r.files.values():
                if hashlib.sha256(data).hexdigest() == sha256:
                    return data
        return None

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _error(self, status: int, code: str, msg: str, body: bool):
                data = json.dumps({"error": msg}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", msg)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _authorized(self) -> bool:
                if hub.token is None:
                    return True
                return self.headers.get("Authorization") == f"Bearer {hub.token}"

            def _repo(self, org: str, name: str, rev: str, body: bool):
                repo = hub.repos.get(f"{org}/{name}")
                if repo is None:
                    self._error(404, "RepoNotFound", "Repository not found", body)
                    return None
                if unquote(rev) not in ("main", repo.commit):
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", body)
                    return None
                return repo

            def _serve(self, body: bool):
                path = urlsplit(self.path).path
                rng = self.headers.get("Range")
                with hub.lock:
                    hub.requests.append((self.command, path, rng))
                parts = path.strip("/").split("/")
                if path.startswith("/cdn/"):
                    data = hub.blob(parts[1])
                    if data is None:
                        return self._error(404, "EntryNotFound", "no such blob", body)
                    # huggingface_hub follows the redirect to this same host and reads the
                    # metadata here: the ETag is the sha256, as the Hub's X-Linked-Etag.
                    commit = next(r.commit for r in hub.repos.values() if data in r.files.values())
                    return self._content(data, {"ETag": f'"{parts[1]}"', "X-Repo-Commit": commit}, body, name=parts[1])
                if not self._authorized():
                    return self._error(401, "", "Invalid credentials in Authorization header", body)
                if parts[:2] == ["api", "models"] and len(parts) >= 4:
                    rev = parts[5] if len(parts) >= 6 and parts[4] in ("revision", "tree") else "main"
                    repo = self._repo(parts[2], parts[3], rev, body)
                    if repo is None:
                        return
                    if len(parts) >= 5 and parts[4] == "tree":
                        # `list_repo_tree` (huggingface_hub's snapshot_download); one page.
                        tree = []
                        for f in sorted(repo.files):
                            d = repo.files[f]
                            entry = {"type": "file", "path": f, "size": len(d), "oid": git_blob_id(d)}
                            if f.endswith(LFS_SUFFIXES):
                                entry["lfs"] = {"oid": hashlib.sha256(d).hexdigest(), "size": len(d), "pointerSize": 134}
                            tree.append(entry)
                        data = json.dumps(tree).encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        if body:
                            self.wfile.write(data)
                        return
                    info = {
                        "id": repo.repo_id,
                        "modelId": repo.repo_id,
                        "sha": repo.commit,
                        "private": False,
                        "siblings": [{"rfilename": f} for f in sorted(repo.files)],
                    }
                    data = json.dumps(info).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                    return
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo = self._repo(parts[0], parts[1], parts[3], body)
                    if repo is None:
                        return
                    file = unquote("/".join(parts[4:]))
                    data = repo.files.get(file)
                    if data is None:
                        return self._error(404, "EntryNotFound", f"{file} does not exist", body)
                    headers = {"X-Repo-Commit": repo.commit}
                    if file.endswith(LFS_SUFFIXES):
                        sha = hashlib.sha256(data).hexdigest()
                        self.send_response(302)
                        self.send_header("Location", f"{hub.base}/cdn/{sha}")
                        self.send_header("ETag", f'"{git_blob_id(data)}"')
                        self.send_header("X-Linked-Etag", f'"{sha}"')
                        self.send_header("X-Linked-Size", str(len(data)))
                        self.send_header("X-Repo-Commit", repo.commit)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    headers["ETag"] = f'"{git_blob_id(data)}"'
                    return self._content(data, headers, body, name=file)
                self._error(404, "EntryNotFound", "unknown endpoint", body)

            def _content(self, data: bytes, headers: dict, body: bool, name: str):
                total = len(data)
                start, end = 0, total - 1
                rng = self.headers.get("Range")
                status = 200
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[len("bytes="):].partition("-")
                    start = int(a) if a else 0
                    end = min(int(b), total - 1) if b else total - 1
                    if start >= total:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                chunk = data[start:end + 1]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if not body:
                    return
                cut = False
                with hub.lock:
                    # The first real download (not a one-byte probe) of the file is cut short.
                    if hub.drop_once is not None and len(chunk) > 1 and (name == hub.drop_once or name == hashlib.sha256(hub.blob_named(hub.drop_once) or b"").hexdigest()):
                        hub.drop_once = None
                        cut = True
                if cut:
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)

        return Handler

    def blob_named(self, file: str) -> bytes | None:
        for r in self.repos.values():
            if file in r.files:
                return r.files[file]
        return None
