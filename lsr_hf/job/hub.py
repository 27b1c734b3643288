"""Pushing a finished run to the Hugging Face Hub: the checks before training, what is uploaded, and ``lsr-hf push``.

* ``check_push`` runs before any data is loaded when a recipe says ``hub.push: true`` (and again right before an
  upload): offline mode, no token, a token without write access to the repository's namespace, or an existing
  public repository that ``hub.private: true`` would need made private stop the job with ``HubError`` (exit status 2)
  in one line.
* ``push_files`` lists what a push of a run folder uploads; ``stage_push`` writes those files, made public, into
  another folder: no pickles (``training_args.bin`` stays home, ``training_args.json`` goes instead), no checkpoints,
  no TensorBoard event files (their names carry the host name), and no absolute paths in any file (paths under the
  current folder become relative to it, any other path its last component: ``training.output_dir``, ``data.path``,
  the command line, skipped-file notes). The card (``README.md``) is written again for the repository: its code loads
  the model from the Hub.
* ``push_run`` does the push (``HfApi.create_repo(exist_ok=True)`` + ``upload_folder``) and returns the repository's
  URL; ``lsr-hf push DIR --repo-id user/name`` and ``python scripts/push.py DIR ...`` are ``main``. A failed upload
  raises ``PushFailed`` (exit status 4): the run folder is left as it is and the message gives the command to retry.

Visibility of an existing repository: ``private=True`` makes a public one private (``update_repo_settings``) before
anything is uploaded; ``private=False`` never makes a private one public (a warning says so): a push never makes a
repository more visible than it was.

The token is whatever huggingface_hub finds (``HF_TOKEN``, ``hf auth login``); it is never read into a file or a log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from lsr_hf.errors import EXIT_WRITE_FAILED, JobError
from lsr_hf.job.public import public_data, public_text

logger = logging.getLogger(__name__)

# what a push uploads from the top of a run folder (nothing from its sub-folders), and what it never uploads
PUSH_PATTERNS = (
    "README.md", "config.json", "*.safetensors", "model.safetensors.index.json", "preprocessor_config.json", "*.py",
    "reliability.png", "recipe.yaml", "results.json", "training_args.json", "trainer_state.json",
    "test_predictions.npz",
)  # fmt: skip
NEVER_PUSHED = (
    "checkpoint-*", "runs/*", "*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", ".*", "*.tmp",
)  # fmt: skip
TRAINING_ARGS_FILE = "training_args.json"  # the JSON form of the TrainingArguments (training_args.bin is a pickle)
TEXT_FILES = (".md", ".yaml", ".yml", ".txt")
JSON_FILES = (".json",)


class HubError(JobError):
    """A push that cannot happen (offline mode, no token, no write access, a repository that would stay public):
    found before training, exit status 2, nothing uploaded."""


class PushFailed(JobError):
    """The upload of a finished run failed: the run folder is kept as it is; ``str(err)`` names the retry command."""

    exit_code = EXIT_WRITE_FAILED


@dataclass(frozen=True)
class PushTarget:
    """What ``check_push`` found: the full repository id, the token's user, and the repository's visibility
    (``exists`` False: ``create_repo`` makes it)."""

    repo_id: str
    user: str
    exists: bool = False
    private: bool | None = None


# ------------------------------------------------------------------------------------------------- checks


def check_push(repo_id: str, private: bool = False, token: str | None = None, what: str = "hub.push") -> PushTarget:
    """Checks that a push to ``repo_id`` can happen, without uploading anything; raises ``HubError`` (one line,
    starting with ``what``) otherwise. Cost: two small requests (``whoami``, the repository's info)."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    before_training = what == "hub.push"
    if constants.is_offline_mode():
        later = (
            f", or train without hub.push and push the finished run later with `lsr-hf push OUTPUT_DIR --repo-id "
            f"{repo_id}`" if before_training else " and run the command again"
        )  # fmt: skip
        raise HubError(
            f"{what}: offline mode is on (HF_HUB_OFFLINE=1), so nothing can be pushed to {repo_id}: unset "
            f"HF_HUB_OFFLINE{later}"
        )
    token = token or get_token()
    if not token:
        raise HubError(
            f"{what}: no Hugging Face token to push to {repo_id} with: set HF_TOKEN to a write token or run "
            f"`hf auth login`{' (nothing was trained or uploaded)' if before_training else ''}"
        )
    api = HfApi(token=token)
    try:
        me = api.whoami()
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status == 401:
            raise HubError(
                f"{what}: the Hub refused the token (401 Unauthorized): set HF_TOKEN to a valid write token or "
                "run `hf auth login` again"
            ) from None
        raise HubError(f"{what}: cannot check the token at {constants.ENDPOINT}: {_one_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - network errors (refused, DNS, timeouts) become one line
        raise HubError(f"{what}: cannot reach the Hub at {constants.ENDPOINT}: {_one_line(err)}") from None
    user = str(me.get("name") or "")
    full_id = repo_id if "/" in repo_id else f"{user}/{repo_id}"
    namespace = full_id.split("/")[0]
    problem = _write_access_problem(me, namespace, full_id)
    if problem:
        raise HubError(f"{what}: the token of {user!r} cannot write to {full_id}: {problem}")
    try:
        info = api.model_info(full_id)
    except RepositoryNotFoundError:
        return PushTarget(full_id, user)
    except HfHubHTTPError as err:
        if getattr(err.response, "status_code", None) == 404:
            return PushTarget(full_id, user)
        raise HubError(f"{what}: cannot read {full_id} on the Hub: {_one_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - network errors become one line
        raise HubError(f"{what}: cannot reach the Hub at {constants.ENDPOINT}: {_one_line(err)}") from None
    target = PushTarget(full_id, user, exists=True, private=bool(info.private))
    if target.private and not private:
        logger.warning("%s is private and stays private (hub.private=false never publishes a repository): change "
                       "its visibility in its settings on the Hub to publish it", full_id)  # fmt: skip
    elif private and not target.private:
        logger.warning("%s is public: the push makes it private first (hub.private=true)", full_id)
    return target


def _write_access_problem(me: dict[str, Any], namespace: str, repo_id: str) -> str | None:
    """Why the ``whoami`` answer ``me`` shows no write access to ``repo_id`` (in ``namespace``), or None."""
    auth = (me.get("auth") or {}).get("accessToken") or {}
    role = auth.get("role")
    if role == "read":
        return "it is a read-only token; create a write token at https://huggingface.co/settings/tokens"
    orgs = {str(o.get("name")): o for o in me.get("orgs") or [] if isinstance(o, dict)}
    if namespace != me.get("name") and namespace not in orgs:
        known = ", ".join([str(me.get("name")), *orgs]) or "none"
        return f"{namespace!r} is neither the user nor one of their organizations ({known})"
    if namespace in orgs and orgs[namespace].get("roleInOrg") == "read":
        return f"the user's role in the organization {namespace!r} is read"
    fine = auth.get("fineGrained")
    if role == "fineGrained" and isinstance(fine, dict) and isinstance(fine.get("scoped"), list):
        for scope in fine["scoped"]:
            entity = (scope or {}).get("entity") or {}
            if entity.get("name") in (namespace, repo_id) and "repo.write" in (scope.get("permissions") or []):
                return None
        return f"the fine-grained token has no repo.write permission on {namespace!r} or {repo_id!r}"
    return None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


# ------------------------------------------------------------------------------------------------- paths


# ------------------------------------------------------------------------------------------------- what is pushed


def is_pushed(name: str) -> bool:
    """Whether a file at the top of a run folder is uploaded (``PUSH_PATTERNS``, none of ``NEVER_PUSHED``)."""
    return any(fnmatch(name, p) for p in PUSH_PATTERNS) and not any(fnmatch(name, p) for p in NEVER_PUSHED)


def push_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """The names of the files a push of ``run_dir`` uploads, sorted: the card (``README.md``, always written for
    the push), ``training_args.json`` when it is there or can be made from ``recipe.yaml``, and the files of the
    folder's top level that ``is_pushed``."""
    folder = Path(run_dir)
    names = {p.name for p in folder.iterdir() if p.is_file() and is_pushed(p.name)} | {"README.md"}
    if TRAINING_ARGS_FILE not in names and _training_args(folder) is not None:
        names.add(TRAINING_ARGS_FILE)
    return sorted(names)


def stage_push(
    run_dir: str | os.PathLike[str], dest: str | os.PathLike[str], repo_id: str | None = None,
    private: bool | None = None, license: str | None = None,
) -> list[str]:  # fmt: skip
    """Writes the files a push of ``run_dir`` uploads into ``dest`` (made public: module docstring), with the card
    written again to load the model from ``repo_id``; returns the names of the files in ``dest``, sorted."""
    from lsr_hf.job.model_card import write_model_card

    folder, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    recipe, results = _finished_run(folder)
    if repo_id is not None:
        hub = replace(recipe.hub, push=True, repo_id=repo_id)
        recipe = replace(recipe, hub=hub if private is None else replace(hub, private=private))
    if license is not None:
        recipe = replace(recipe, hub=replace(recipe.hub, license=license))
    names = push_files(folder)
    for name in names:
        source, target = folder / name, dest / name
        if name == "README.md":
            continue  # written below, for the repository
        if name == TRAINING_ARGS_FILE and not source.is_file():
            data = _training_args(folder)
            target.write_text(json.dumps(public_data(data, folder), indent=2) + "\n", encoding="utf-8")
        elif name.endswith(JSON_FILES):
            data = json.loads(source.read_text(encoding="utf-8"))
            target.write_text(json.dumps(public_data(data, folder), indent=2) + "\n", encoding="utf-8")
        elif name.endswith(TEXT_FILES):
            target.write_text(public_text(source.read_text(encoding="utf-8"), folder), encoding="utf-8")
        else:
            _link_or_copy(source, target)
    write_model_card(folder, recipe, results, to=dest, public=True)
    return sorted(p.name for p in dest.iterdir() if p.is_file())


def _finished_run(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The recipe (``recipe.yaml``) and results (``results.json``) of the finished run in ``folder``."""
    from lsr_hf.job.outputs import RESULTS_FILE, finished_results
    from lsr_hf.recipe import RecipeError, load_recipe

    if not folder.is_dir():
        raise HubError(f"push: {str(folder)!r} is not a folder: give the training.output_dir of a finished run")
    results = finished_results(folder)
    if results is None or not (folder / "config.json").is_file():
        raise HubError(
            f"push: {str(folder)!r} holds no finished run (no readable {RESULTS_FILE} and config.json): push the "
            "training.output_dir of a run that finished"
        )
    try:
        recipe = load_recipe(folder / "recipe.yaml")
    except RecipeError as err:
        raise HubError(f"push: cannot read the run's recipe: {err}") from None
    return recipe, results


def _training_args(folder: Path) -> dict[str, Any] | None:
    """The run's TrainingArguments as JSON data: ``training_args.json``, else rebuilt from ``recipe.yaml``."""
    saved = folder / TRAINING_ARGS_FILE
    if saved.is_file():
        try:
            return json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    try:
        from lsr_hf.recipe import load_recipe

        args = load_recipe(folder / "recipe.yaml").training_arguments(remove_unused_columns=False, push_to_hub=False)
        return json.loads(args.to_json_string())
    except Exception:  # noqa: BLE001 - an old folder, a recipe this version cannot rebuild: no such file
        return None


def _link_or_copy(source: Path, target: Path) -> None:
    """Weights are hard-linked when the staging folder is on the same disk (nothing writes to them); the rest,
    and any file a link cannot be made for, is copied."""
    if source.suffix == ".safetensors":
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


# ------------------------------------------------------------------------------------------------- the push


def commit_message(recipe: Any) -> str:
    """``lsr-hf: <model> trained with <method> on <dataset>`` (the dataset as the card names it: never a path)."""
    from lsr_hf.job.model_card import dataset_label

    return f"lsr-hf: {recipe.model.name} trained with {recipe.loss.method} on {dataset_label(recipe.data)}"


def retry_command(run_dir: str | os.PathLike[str], repo_id: str, private: bool = False) -> str:
    """The command that pushes the finished run in ``run_dir`` again."""
    words = ["lsr-hf", "push", str(run_dir), "--repo-id", repo_id, *(["--private"] if private else [])]
    return shlex.join(words)


def push_run(
    run_dir: str | os.PathLike[str],
    repo_id: str | None = None,
    private: bool | None = None,
    license: str | None = None,
    token: str | None = None,
) -> str:
    """Pushes the finished run in ``run_dir`` to ``repo_id`` (default: the recipe's ``hub.repo_id``) and returns
    the repository's URL.

    ``private`` (default: the recipe's ``hub.private``) is the visibility of a repository the push creates; an
    existing public one is made private when it is True, an existing private one stays private. ``license``
    (default: the recipe's ``hub.license``) goes into the card. Raises ``HubError`` (exit status 2) when the push
    cannot happen (``check_push``), ``PushFailed`` (exit status 4) when the upload itself fails; the run folder is
    never changed."""
    from huggingface_hub import HfApi

    folder = Path(run_dir)
    recipe, _ = _finished_run(folder)
    repo_id = repo_id or recipe.hub.repo_id
    if not repo_id:
        raise HubError("push: no repository to push to: pass --repo-id user/name (the recipe has no hub.repo_id)")
    private = recipe.hub.private if private is None else private
    target = check_push(repo_id, private, token, what="push")
    api = HfApi(token=token)
    retry = retry_command(folder, target.repo_id, private)
    try:
        url = api.create_repo(target.repo_id, private=private, exist_ok=True)
        if target.exists and private and not target.private:
            api.update_repo_settings(target.repo_id, private=True)
        with tempfile.TemporaryDirectory(prefix="lsr_hf_push_") as stage:
            stage_push(folder, stage, target.repo_id, private, license)
            api.upload_folder(
                repo_id=target.repo_id,
                folder_path=stage,
                allow_patterns=list(PUSH_PATTERNS),
                ignore_patterns=list(NEVER_PUSHED),
                commit_message=commit_message(recipe),
            )
    except (HubError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise PushFailed(
            f"the push to {target.repo_id} failed: {_one_line(err)}. The run in {str(folder)!r} is kept as it is; "
            f"retry with: {retry}"
        ) from err
    return str(url)


# ------------------------------------------------------------------------------------------------- command line

PUSH_DOC = """Push a finished run (its training.output_dir) to the Hugging Face Hub:

    lsr-hf push outputs/demo_lsr_os_tc --repo-id you/resnet10t-demo-ostc [--private] [--license mit]
    python scripts/push.py outputs/demo_lsr_os_tc --repo-id you/resnet10t-demo-ostc          (the same)

Uploads the model, its card (written again to load from the repository), recipe, results, training arguments (JSON)
and reliability diagram; never the checkpoints, training_args.bin or absolute paths. The token comes from HF_TOKEN or
`hf auth login`. Exit status 2: the push cannot happen (offline, no token, no write access, not a finished run);
4: the upload failed (retry the same command). Prints the repository's URL.
"""


def push_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``lsr-hf push`` / ``scripts/push.py``."""
    parser = argparse.ArgumentParser(prog=prog, description=PUSH_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="DIR", help="The output folder of a finished run (training.output_dir).")
    parser.add_argument("--repo-id", metavar="USER/NAME", help="Hub repository (default: the recipe's hub.repo_id).")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=None,
                            help="Create the repository private (make an existing public one private).")
    visibility.add_argument("--public", dest="private", action="store_false",
                            help="Create the repository public (an existing private one stays private).")
    parser.add_argument("--license", metavar="ID", help="The card's license (default: the recipe's hub.license).")
    parser.add_argument("--debug", action="store_true", help="Show the traceback of a failed push.")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``lsr-hf push DIR --repo-id user/name``: pushes a finished run, prints its URL; returns the exit status."""
    args = push_parser(prog).parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    if args.license is not None and (not args.license.strip() or any(c.isspace() for c in args.license)):
        print(f"error: --license must be a Hub license id like 'apache-2.0', got {args.license!r}", file=sys.stderr)
        return 2
    try:
        url = push_run(args.run_dir, args.repo_id, args.private, args.license)
    except JobError as err:
        if args.debug or os.environ.get("LSR_HF_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"pushed {args.run_dir} to {url}")
    return 0
