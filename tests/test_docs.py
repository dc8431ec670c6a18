"""The documentation: the mkdocs site builds in strict mode, and every `zoo-*` command line that README.md and
docs/*.md show in a code block composes, as the command would compose it (so a renamed or misspelt key in the
docs fails here, not in a reader's shell)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from zoo.config.paths import CONF_DIR

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Each console script and the config its @hydra.main composes (zoo/cli/*.py).
CONFIG_OF = {"zoo-train": "train", "zoo-eval": "eval", "zoo-predict": "predict", "zoo-export": "export",
             "zoo-visualize": "visualize", "zoo-reproduce": "reproduce", "zoo-proposals": "proposals"}
NOT_CHECKED = ("zoo-list",)  # takes no overrides
OWN_PARSER = ("zoo-import",)  # reads key=value against conf/import.yaml itself (zoo.cli.import_model.parse)

FENCE = re.compile(r"^\s*(```|~~~)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")
# Hydra's own flags; the ones listed in TAKES_VALUE read the next word as their value.
TAKES_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
               "-cd", "--experimental-rerun"}
INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def code_block_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, logical line) of every line in a fenced code block, `\\`-continued lines joined."""
    found, inside, pending, start = [], False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        if not pending:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        found.append((start, pending + stripped))
        pending = ""
    return found


def command_words(line: str) -> list[str] | None:
    """The words of a zoo-* command line (prompt and environment assignments dropped), or None for another line."""
    text = line.strip()
    if text.startswith("$ "):
        text = text[2:]
    try:
        words = shlex.split(text, comments=True)
    except ValueError:  # an unclosed quote: a zoo-* line then fails to compose (naming its line), any other is skipped
        words = text.split()
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    return words if words and words[0].startswith("zoo-") else None


PLACEHOLDER = re.compile(r"<([A-Za-z0-9_ -]+)>")


def placeholders_filled(word: str) -> str:
    """`checkpoint=runs/<run>/checkpoints/last.pt` with `<run>` as `run`: Hydra's override lexer takes no `<`, and
    a placeholder in a value stands for any word. One in a key is left as it is, to fail: no key is a placeholder."""
    key, sep, value = word.partition("=")
    return key + sep + PLACEHOLDER.sub(lambda m: m.group(1).replace(" ", "_").replace("-", "_"), value) if sep else word


def overrides_to_compose(words: list[str]) -> list[str]:
    """The command's overrides as `hydra.compose` takes them: Hydra's flags, `hydra.*` overrides and `hydra/...`
    groups dropped, and a sweep (`seed=0,1,2`, `range(...)`) replaced by its first value."""
    kept, skip_next = [], False
    args = words[1:]
    for i, word in enumerate(args):
        if skip_next:
            skip_next = False
            continue
        if word.startswith("-"):  # a flag: no override starts with "-" (deletions start with "~")
            skip_next = word in TAKES_VALUE or (word == "--info" and i + 1 < len(args) and args[i + 1] in INFO_VALUES)
            continue
        kept.append(placeholders_filled(word))
    out = []
    for override in OverridesParser.create().parse_overrides(kept):
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(override.input_line)
    return out


def compose_command(command: str, overrides: list[str]):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose(CONFIG_OF[command], overrides=overrides)


def _documented_commands():
    params = []
    for path in DOC_FILES:
        for number, line in code_block_lines(path):
            words = command_words(line)
            if words is None or words[0] in NOT_CHECKED:
                continue
            params.append(pytest.param(words, id=f"{path.relative_to(REPO)}:{number}"))
    return params


DOCUMENTED = _documented_commands()


def test_docs_show_command_lines():
    assert DOC_FILES[0].exists() and len(DOC_FILES) > 1, "README.md and docs/*.md"
    assert len(DOCUMENTED) >= 20, "the command-line check found too few command lines to be looking in the right place"


@pytest.mark.parametrize("words", DOCUMENTED)
def test_documented_command_composes(words):
    if words[0] in OWN_PARSER:
        from zoo.cli.import_model import parse
        from zoo.models.imports import find_import

        cfg = parse([placeholders_filled(w) for w in words[1:]])
        if cfg.source or cfg.model:
            find_import(cfg.source, cfg.model)
        return
    assert words[0] in CONFIG_OF, f"{words[0]}: not a zoo command that takes overrides ({', '.join(CONFIG_OF)})"
    compose_command(words[0], overrides_to_compose(words))


def test_a_misspelt_key_in_a_documented_command_fails():
    words = command_words("$ OMP_NUM_THREADS=1 zoo-train model=ssd_lite trainer.max_epoch=3  # typo: max_epochs")
    with pytest.raises(Exception, match="max_epoch"):
        compose_command(words[0], overrides_to_compose(words))


def test_command_lines_are_read_as_the_shell_and_hydra_read_them(tmp_path):
    doc = tmp_path / "page.md"
    doc.write_text("text zoo-train not=checked\n```bash\n$ CUDA_VISIBLE_DEVICES=0 zoo-train -m seed=0,1,2 \\\n"
                   "    hydra.run.dir=runs/x 'inputs=[a.jpg,b/]'  # a comment\nzoo-list\nmake train\n```\n")
    lines = code_block_lines(doc)
    assert [n for n, _ in lines] == [3, 5, 6]
    words = command_words(lines[0][1])
    assert words[0] == "zoo-train"
    assert overrides_to_compose(words) == ["seed=0", "inputs=[a.jpg,b/]"]
    assert command_words(lines[2][1]) is None
    assert overrides_to_compose(["zoo-train", "--cfg", "job", "--info", "defaults", "+x=1,2"]) == ["+x=1"]
    assert overrides_to_compose(["zoo-eval", "checkpoint=runs/<run>/checkpoints/last.pt"]) == [
        "checkpoint=runs/run/checkpoints/last.pt"]


def test_a_placeholder_in_a_key_does_not_compose():
    with pytest.raises(Exception):
        compose_command("zoo-train", overrides_to_compose(["zoo-train", "model.<part>.lr=0.1"]))


def test_mkdocs_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's end-of-life banner, not a build warning
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}\n{done.stdout}"
    assert (tmp_path / "site" / "index.html").exists()
