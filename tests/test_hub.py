"""Pushing to the Hub (``lsr_hf.job.hub``): the checks before training (offline mode, no token, no write access: exit 2
before any data is loaded), what a push uploads (no pickles, no checkpoints, no absolute paths), ``lsr-hf push`` /
``scripts/push.py``, the visibility of an existing repository, and a failed upload after training that keeps the run
and prints the command that retries it.

The Hub is a local fake: a small HTTP server (``FakeHub``) that answers the requests huggingface_hub sends for a push
(``whoami-v2``, ``repos/create``, model info, repo settings, ``preupload`` and ``commit``) and keeps the committed
files. huggingface_hub reads ``HF_ENDPOINT`` when it is imported, so every push runs in a subprocess pointed at it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
WRITE_TOKEN, READ_TOKEN = "hf_fake_write_token_0123456789", "hf_fake_read_token_0123456789"
FAST = [
    "training.max_steps=2", "training.save_strategy=steps", "training.save_steps=2", "training.eval_strategy='no'",
    "training.use_cpu=true", "training.dataloader_num_workers=0", "training.disable_tqdm=true",
    "training.report_to=none", "training.logging_steps=1", "data.max_train_samples=64", "data.max_eval_samples=64",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------------ fake Hub


class FakeHub:
    """The endpoints of the Hub that a push uses, in memory: ``repos[repo_id] = {"private": bool, "files": {}}``.
    ``fail_commits`` makes every commit fail (HTTP 500); ``requests`` logs (method, path) of each request,
    ``validated`` the cards sent to ``validate-yaml``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_commits = False
        self.validated: list[str] = []
        self.users = {
            WRITE_TOKEN: {"name": "someone", "role": "write", "orgs": [{"name": "team", "roleInOrg": "write"}]},
            READ_TOKEN: {"name": "someone", "role": "read", "orgs": []},
        }
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub.handle(self, "GET")

            def do_POST(self) -> None:
                hub.handle(self, "POST")

            def do_PUT(self) -> None:
                hub.handle(self, "PUT")

            def do_HEAD(self) -> None:
                hub.handle(self, "HEAD")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # the requests --------------------------------------------------------------------------------------------

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        path = req.path.split("?")[0]
        self.requests.append((method, path))
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        user = self.users.get(req.headers.get("Authorization", "").removeprefix("Bearer "))
        parts = path.strip("/").split("/")
        if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":  # a download
            return self.download(req, method, "/".join(parts[:2]), "/".join(parts[4:]))
        if path == "/api/whoami-v2":
            if user is None:
                return self.reply(req, 401, {"error": "Invalid credentials in Authorization header"})
            auth = {"accessToken": {"displayName": "test", "role": user["role"]}}
            return self.reply(req, 200, {"type": "user", "name": user["name"], "orgs": user["orgs"], "auth": auth})
        if user is None:
            return self.reply(req, 401, {"error": "Invalid credentials in Authorization header"})
        if path == "/api/validate-yaml" and method == "POST":  # the card's metadata, checked before a commit
            self.validated.append(json.loads(body)["content"])
            return self.reply(req, 200, {})
        if path == "/api/repos/create" and method == "POST":
            payload = json.loads(body)
            repo_id = f"{payload.get('organization') or user['name']}/{payload['name']}"
            if user["role"] != "write":
                return self.reply(req, 403, {"error": "You don't have the rights to create a model"})
            if repo_id in self.repos:
                return self.reply(req, 409, {"error": "You already created this model repo", "url": self.repo_url(repo_id)})
            self.repos[repo_id] = {"private": self.private(payload, False), "files": {}}
            return self.reply(req, 200, {"url": self.repo_url(repo_id), "name": repo_id})
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            repo = self.repos.get(repo_id)
            if repo is None:
                return self.reply(req, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if method == "GET" and (not rest or rest[0] == "revision"):
                siblings = [{"rfilename": name} for name in sorted(repo["files"])]
                return self.reply(req, 200, {"id": repo_id, "private": repo["private"], "sha": "1" * 40,
                                             "siblings": siblings})  # fmt: skip
            if method == "GET" and rest[:1] == ["tree"]:  # snapshot_download lists the files
                tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                        for name, data in sorted(repo["files"].items())]  # fmt: skip
                return self.reply(req, 200, tree)
            if method == "PUT" and rest == ["settings"]:
                repo["private"] = self.private(json.loads(body), repo["private"])
                return self.reply(req, 200, {})
            if method == "POST" and rest[:1] == ["preupload"]:
                files = json.loads(body)["files"]
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                return self.reply(req, 200, {"files": modes, "commitOid": "0" * 40})
            if method == "POST" and rest[:1] == ["commit"]:
                if self.fail_commits:
                    return self.reply(req, 500, {"error": "the fake Hub failed this commit"})
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "header":
                        repo["message"] = item["value"]["summary"]
                return self.reply(req, 200, {"commitUrl": f"{self.repo_url(repo_id)}/commit/1", "commitOid": "1" * 40})
        return self.reply(req, 404, {"error": f"the fake Hub has no {method} {path}"})

    def download(self, req: BaseHTTPRequestHandler, method: str, repo_id: str, name: str) -> None:
        """``/{repo_id}/resolve/{revision}/{name}``: the file with the headers huggingface_hub reads (no auth)."""
        data = self.repos.get(repo_id, {}).get("files", {}).get(name)
        if data is None:
            return self.reply(req, 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        req.send_response(200)
        for key, value in {"Content-Length": str(len(data)), "X-Repo-Commit": "1" * 40,
                           "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}.items():  # fmt: skip
            req.send_header(key, value)
        req.end_headers()
        if method == "GET":
            req.wfile.write(data)

    @staticmethod
    def private(payload: dict, default: bool) -> bool:
        """A request's visibility: ``visibility: private|public`` (huggingface_hub 1.x) or ``private: bool``."""
        if "visibility" in payload:
            return payload["visibility"] == "private"
        return bool(payload.get("private", default))

    def repo_url(self, repo_id: str) -> str:
        return f"{self.url}/{repo_id}"

    @staticmethod
    def reply(req: BaseHTTPRequestHandler, status: int, data: dict | list, headers: dict | None = None) -> None:
        raw = json.dumps(data).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(raw)


@pytest.fixture
def hub():
    fake = FakeHub()
    yield fake
    fake.close()


def hub_env(hub: FakeHub | None, tmp_path: Path, token: str | None = WRITE_TOKEN, offline: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") or k in ("HF_DATASETS_OFFLINE",)}
    env.update(PYTHONPATH=str(REPO), HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1" if offline else "0")  # fmt: skip
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run(args: list[str], env: dict, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                          check=False)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# --------------------------------------------------------------------------------------------- a finished run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A demo run trained in this process (no push), in a folder with an absolute path, with a TensorBoard-like
    folder and a stray pickle beside it."""
    from lsr_hf.job.train import run as train

    out = tmp_path_factory.mktemp("hub_run") / "out"
    recipe = load_recipe(REPO / "recipes" / "demo_ostc.yaml", [f"training.output_dir={out}", *FAST])
    results = train(recipe, command=f"{sys.executable} scripts/train.py --recipe recipes/demo_ostc.yaml "
                                    f"--set training.output_dir={out}")  # fmt: skip
    (out / "runs").mkdir()
    (out / "runs" / "events.out.tfevents.1.myhost.1").write_bytes(b"x")
    return out, results


def test_push_files_and_staged_contents_have_no_pickle_checkpoint_or_absolute_path(finished_run, tmp_path):
    from huggingface_hub import ModelCard

    from lsr_hf.job.hub import push_files, stage_push

    out, _ = finished_run
    assert (out / "training_args.bin").is_file() and (out / "training_args.json").is_file()
    names = push_files(out)
    assert {"README.md", "config.json", "model.safetensors", "recipe.yaml", "results.json", "training_args.json",
            "reliability.png"} <= set(names)  # fmt: skip
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl")) or "/" in n or n.startswith(("checkpoint", "runs"))]
    stage = tmp_path / "stage"
    assert stage_push(out, stage, "someone/demo-ostc") == names
    assert sorted(p.name for p in stage.iterdir()) == names
    private = [str(out), str(out.parent), str(Path.home()), sys.executable]
    for path in stage.iterdir():
        data = path.read_bytes()
        for text in private:
            assert text.encode() not in data, (path.name, text)
    recipe = load_recipe(stage / "recipe.yaml")  # still a recipe
    assert recipe.training["output_dir"] == "out"
    args = json.loads((stage / "training_args.json").read_text())
    assert args["output_dir"] == "out" and args["learning_rate"] == 0.1
    results = json.loads((stage / "results.json").read_text())
    assert results["command"].startswith("python scripts/train.py") and "training.output_dir=out" in results["command"]
    card = ModelCard.load(stage / "README.md")
    assert card.data.license == "apache-2.0" and card.data.datasets is None  # demo: no Hub dataset
    assert card.data.eval_results[0].dataset_name == "demo"
    assert card.data.model_name == "demo-ostc"
    assert 'pipeline("image-classification", model="someone/demo-ostc")' in card.text
    assert "import lsr_hf" not in card.text and "trust_remote_code" not in card.text  # a stock timm net
    # the run folder itself is left as it was
    assert str(out) in (out / "recipe.yaml").read_text()


def test_public_text_shortens_absolute_paths_only(tmp_path, monkeypatch):
    from lsr_hf.job.public import public_command, public_text

    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "outputs" / "run"
    text = (f"output_dir: {run_dir}\npath: /data/sets/gtzan.\nsee https://huggingface.co/x/y, 60/120/160, "
            f"</details> and `{tmp_path}`; load_file(f\"{{folder}}/model.safetensors\"), (a + b)/2, $HOME/x")  # fmt: skip
    assert public_text(text, "/elsewhere/run") == (
        "output_dir: outputs/run\npath: gtzan.\nsee https://huggingface.co/x/y, 60/120/160, </details> and `.`; "
        "load_file(f\"{folder}/model.safetensors\"), (a + b)/2, $HOME/x"
    )
    assert public_text(f"{run_dir}", run_dir) == "run"
    command = f"/venv/bin/python {tmp_path}/scripts/train.py --recipe /r/x.yaml --set training.output_dir={run_dir}"
    assert public_command(command) == "python scripts/train.py --recipe x.yaml --set training.output_dir=outputs/run"


# ------------------------------------------------------------------------------------------------ the checks


def test_preflight_offline_missing_token_and_read_token_stop_training_before_data(hub, tmp_path):
    """scripts/train.py with hub.push: exit 2 with a one-line error before the data (a data.path that does not
    exist) is read and before the output folder is made."""
    cases = [
        (hub_env(hub, tmp_path, offline=True), "offline mode is on (HF_HUB_OFFLINE=1)"),
        (hub_env(hub, tmp_path, token=None), "no Hugging Face token"),
        (hub_env(hub, tmp_path, token="hf_not_a_token"), "the Hub refused the token (401"),
        (hub_env(hub, tmp_path, token=READ_TOKEN), "cannot write to someone/x: it is a read-only token"),
    ]
    for env, message in cases:
        proc = run(["scripts/train.py", "--recipe", "recipes/imagefolder_ostc.yaml",
                    "--set", f"data.path={tmp_path / 'no_such_data'}", "--set", f"training.output_dir={tmp_path / 'out'}",
                    "--set", "hub.push=true", "--set", "hub.repo_id=someone/x"], env, REPO, timeout=300)  # fmt: skip
        assert proc.returncode == 2, proc.stderr[-3000:]
        (line,) = error_lines(proc.stderr)
        assert message in line and "hub.push" in line, line
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out").exists()
    assert not hub.repos


def test_check_push_namespaces_and_visibility(hub, tmp_path):
    code = """
import sys
from lsr_hf.job.hub import HubError, check_push
print(check_push("someone/new"))
print(check_push("team/new").repo_id)
print(check_push("bare").repo_id)
try:
    check_push("stranger/x")
except HubError as err:
    print("refused:", err)
"""
    proc = run(["-c", code], hub_env(hub, tmp_path), tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "PushTarget(repo_id='someone/new', user='someone', exists=False, private=None)"
    assert lines[1:3] == ["team/new", "someone/bare"]
    assert lines[3].startswith("refused: hub.push: the token of 'someone' cannot write to stranger/x: 'stranger' is")


# ------------------------------------------------------------------------------------------------ the push


def test_push_command_uploads_the_public_files_and_prints_the_url(finished_run, hub, tmp_path):
    from huggingface_hub import ModelCard

    out, _ = finished_run
    proc = run([str(REPO / "scripts" / "push.py"), str(out), "--repo-id", "someone/demo-ostc", "--license", "mit"],
               hub_env(hub, tmp_path), tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(f"{hub.url}/someone/demo-ostc")
    repo = hub.repos["someone/demo-ostc"]
    assert repo["private"] is False
    assert "on auto" not in repo["message"] and repo["message"] == "lsr-hf: resnet10t trained with lsr_os_tc on demo"
    files = repo["files"]
    assert "training_args.bin" not in files and "training_args.json" in files and "model.safetensors" in files
    assert files["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert not [name for name in files if "/" in name]
    for name, data in files.items():
        assert str(out).encode() not in data and str(tmp_path).encode() not in data, name
    (tmp_path / "README.md").write_bytes(files["README.md"])
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.license == "mit" and card.data.pipeline_tag == "image-classification"
    assert ("POST", "/api/repos/create") in hub.requests and ("GET", "/api/whoami-v2") in hub.requests
    assert files["README.md"].decode() in hub.validated  # the metadata huggingface_hub checks with the Hub


def test_push_visibility_private_makes_a_public_repo_private_and_never_the_reverse(finished_run, hub, tmp_path):
    out, _ = finished_run
    hub.repos["someone/was-public"] = {"private": False, "files": {}}
    hub.repos["someone/was-private"] = {"private": True, "files": {}}
    env = hub_env(hub, tmp_path)
    proc = run(["-m", "lsr_hf.job.cli", "push", str(out), "--repo-id", "someone/was-public", "--private"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub.repos["someone/was-public"]["private"] is True and hub.repos["someone/was-public"]["files"]
    proc = run(["-m", "lsr_hf.job.cli", "push", str(out), "--repo-id", "someone/was-private", "--public"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub.repos["someone/was-private"]["private"] is True
    assert "is private and stays private" in proc.stderr


def test_push_command_refuses_a_folder_without_a_finished_run(hub, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run(["scripts/push.py", str(tmp_path / "empty"), "--repo-id", "someone/x"], hub_env(hub, tmp_path), REPO)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "holds no finished run" in line and not hub.repos


def test_train_with_push_then_failed_upload_keeps_the_run_and_retry_works(hub, tmp_path):
    """A push after training that fails (the fake Hub refuses the commit) exits 4 with the finished run on disk and
    the command that retries it; that command, once the Hub works again, uploads the run."""
    hub.fail_commits = True
    out = tmp_path / "out"
    env = hub_env(hub, tmp_path)
    sets = [f"training.output_dir={out}", *FAST, "hub.push=true", "hub.repo_id=someone/tiny", "hub.private=true"]
    proc = run(["scripts/train.py", "--recipe", "recipes/demo_ostc.yaml", *[a for s in sets for a in ("--set", s)]],
               env, REPO)  # fmt: skip
    assert proc.returncode == 4, proc.stderr[-3000:]
    (line,) = error_lines(proc.stderr)
    assert "the push to someone/tiny failed" in line and "retry with: lsr-hf push" in line, line
    assert (out / "results.json").is_file() and (out / "model.safetensors").is_file()
    assert hub.repos["someone/tiny"] == {"private": True, "files": {}}
    retry = shlex.split(line.split("retry with: ", 1)[1])
    assert retry[:2] == ["lsr-hf", "push"]
    hub.fail_commits = False
    proc = run(["-m", "lsr_hf.job.cli", *retry[1:]], env, REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = hub.repos["someone/tiny"]["files"]
    assert {"README.md", "model.safetensors", "results.json", "training_args.json"} <= set(files)
    assert "training_args.bin" not in files
    for name, data in files.items():
        assert str(tmp_path).encode() not in data and WRITE_TOKEN.encode() not in data, name
    for path in out.rglob("*"):  # the token is never written, locally either
        assert not path.is_file() or WRITE_TOKEN.encode() not in path.read_bytes(), path
    assert hub.repos["someone/tiny"]["private"] is True


def test_the_pushed_card_code_runs_for_a_hub_user_without_lsr_hf(finished_run, hub, tmp_path):
    """The Python blocks of the card as pushed, run as written (the model from the fake Hub by its repo id) where
    ``import lsr_hf`` fails and nothing is cached: they give the trained model's predictions."""
    import re

    out, _ = finished_run
    env = hub_env(hub, tmp_path)
    proc = run([str(REPO / "scripts" / "push.py"), str(out), "--repo-id", "someone/for-all"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = hub.repos["someone/for-all"]["files"]["README.md"].decode()
    blocks = re.findall(r"```python\n(.*?)```", card, re.DOTALL)
    assert len(blocks) == 3 and all('"someone/for-all"' in b or "'someone/for-all'" in b for b in blocks)
    assert 'timm.create_model("hf-hub:someone/for-all", pretrained=True)' in card  # the card's other way
    hf_hub = "import timm\nprint('hf-hub', timm.create_model('hf-hub:someone/for-all', pretrained=True).num_classes)"
    code = "import sys\nsys.modules['lsr_hf'] = None\n" + "\n".join(
        f"exec(compile({block!r}, 'card block {i}', 'exec'), {{}})" for i, block in enumerate([*blocks, hf_hub])
    )
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "torch.Size([1, 10])" in done.stdout and "hf-hub 10" in done.stdout


@pytest.mark.parametrize("kind", ["cifar", "audio"])
def test_pushed_remote_code_models_run_their_card_code_from_the_hub(kind, hub, tmp_path):
    """A cifar_* net and an audio model (their code ships in the repository): the pushed card's Python blocks, run
    as written from the fake Hub where ``import lsr_hf`` fails (``trust_remote_code=True``)."""
    import re

    from test_model_card import audio_folder, image_folder, results_for

    from lsr_hf.recipe import write_resolved

    if kind == "cifar":
        folder = image_folder(tmp_path, "cifar_shufflenetv2")
        recipe = load_recipe(REPO / "recipes" / "cifar10_ostc.yaml",
                             ["model.name=cifar_shufflenetv2", f"training.output_dir={folder}"])  # fmt: skip
    else:
        folder = audio_folder(tmp_path)
        recipe = load_recipe(REPO / "recipes" / "gtzan_ostc.yaml", ["data.sample_rate=8000", f"training.output_dir={folder}"])
    write_resolved(recipe, folder / "recipe.yaml")
    (folder / "results.json").write_text(json.dumps({**results_for(recipe), "recipe": recipe.to_dict()}))
    env = hub_env(hub, tmp_path)
    proc = run([str(REPO / "scripts" / "push.py"), str(folder), "--repo-id", f"someone/{kind}"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = hub.repos[f"someone/{kind}"]["files"]
    assert {"modeling_lsr_cifar.py"} <= set(files) if kind == "cifar" else {"modeling_lsr_audio.py"} <= set(files)
    blocks = re.findall(r"```python\n(.*?)```", files["README.md"].decode(), re.DOTALL)
    assert len(blocks) == 3
    code = "import sys\nsys.modules['lsr_hf'] = None\n" + "\n".join(
        f"exec(compile({block!r}, 'card block {i}', 'exec'), {{}})" for i, block in enumerate(blocks)
    )
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", code + "\nprint('ok')"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().endswith("ok")
