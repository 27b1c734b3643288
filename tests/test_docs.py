"""The README and the docs pages it links say what the code does: their links resolve, every documented training
command loads its recipe with its overrides, the files commands name exist, the TensorBoard paragraph names exactly
the recipes that do not log, and the demo's summary line is quoted in the format ``summary_line`` prints (no numbers
that a run would have to keep true)."""

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *(REPO / "docs" / name for name in ("RECIPES.md", "HUB.md", "EXPERIMENTS.md", "REUSE.md",
                                                      "DEVELOPMENT.md"))]  # fmt: skip
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # a `# comment` in a code block is no heading
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def shell_lines(page: Path) -> list[list[str]]:
    """The commands of the page's ```bash blocks, split as the shell splits them (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
    return [shlex.split(line, comments=True) for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: {target} (anchors: {sorted(anchors(linked))})"


def _option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_training_commands_load_their_recipe(page):
    for argv in (argv for argv in shell_lines(page) if "--recipe" in argv):
        assert argv[0] in ("lsr-hf", "python", "accelerate"), argv
        (recipe,) = _option_values(argv, "--recipe")
        load_recipe(REPO / recipe, _option_values(argv, "--set"))  # raises RecipeError on a bad key or value


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_files_named_by_commands_exist(page):
    for argv in shell_lines(page):
        written = set(_option_values(argv, "--out"))
        for arg in argv:
            if re.fullmatch(r"[\w./-]+\.(yaml|py|sh)", arg) and arg not in written:
                made_before = any(arg in _option_values(a, "--out") for a in shell_lines(page))
                assert made_before or (REPO / arg).is_file(), f"{page.name}: {shlex.join(argv)}: {arg}"


def test_tensorboard_paragraph_names_the_recipes_that_do_not_log():
    text = (REPO / "docs" / "RECIPES.md").read_text()
    section = re.search(r"^## TensorBoard\n(.*?)^## ", text, re.S | re.M).group(1)
    patterns = re.findall(r"`([a-z0-9_]+\*?)`", section)
    assert patterns
    silent, logging = set(), set()
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        recipe = load_recipe(path, ["data.path=somewhere"] if "folder" in path.stem else [])
        (logging if recipe.training.get("report_to") == "tensorboard" else silent).add(path.stem)
    named = {stem for stem in silent | logging if any(fnmatch.fnmatch(stem, p) for p in patterns)}
    assert named == silent
    assert logging, "no recipe logs to TensorBoard, the paragraph says some do"


def test_readme_quotes_the_demo_summary_line_in_its_format():
    from lsr_hf.job.train import summary_line

    text = README.read_text()
    quoted = re.search(r"`(test accuracy [^`]*)`", text).group(1)
    results = {"metrics": {"test_accuracy": 1.0, "test_ece": 0.1, "test_nll": 0.2}, "wall_seconds": 31.0,
               "source": "recipes/demo_lsr_os_tc.yaml"}  # fmt: skip
    assert re.sub(r"\d+(\.\d+)?", "…", summary_line(results)) == quoted
    assert not re.search(r"'score': \d", text)  # the pipeline block's printed result: a run's, so not quoted
