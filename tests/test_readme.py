"""The documentation's "use it in your own code" example (docs/REUSE.md, linked from the README) runs as written, in a
temporary working directory."""

import re
from pathlib import Path

REUSE = Path(__file__).resolve().parents[1] / "docs" / "REUSE.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    text = REUSE.read_text()
    marker = "<!-- the block below is run by tests/test_readme.py -->"
    block = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/REUSE.md lost its tested example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "docs/REUSE.md", "exec"), namespace)
    assert set(namespace["parts"]) == {"total", "ce", "kl"}
    assert namespace["trainer"].state.global_step == 20
    assert namespace["logits"].grad is not None
    assert (tmp_path / "outputs" / "example").is_dir()
