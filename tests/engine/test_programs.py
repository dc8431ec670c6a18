"""Loading a .pt2 without running code from it: zoo.apis.programs.load_program refuses a program whose archive would
make torch.export.load (or the loaded module) run code, before anything in it is unpickled or evaluated.

Each tampered file is built as an attacker would: a good zoo export, its archive rewritten. Each test also shows that
the tampering is real: plain torch.export.load (or the module it returns) runs the attacker's command."""
import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision  # noqa: F401  (the NMS and RoI ops the programs call)
from omegaconf import OmegaConf

from tests.engine.test_export import train_tiny


@pytest.fixture(scope="module")
def good_program(tmp_path_factory) -> Path:
    """A program zoo-export wrote, from a two-step checkpoint of the tiny config."""
    from zoo.apis.export import export_checkpoint

    folder = tmp_path_factory.mktemp("program")
    checkpoint = train_tiny(folder / "run")
    export_checkpoint(OmegaConf.create({"checkpoint": str(checkpoint), "out": str(folder / "model.pt2"),
                                        "image_size": None, "batch_size": 1, "split": "test", "data_root": None}))
    return folder / "model.pt2"


class RunsCommand:
    """What an attacker pickles: unpickling it runs a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def rewrite(good: Path, bad: Path, edit) -> None:
    """``bad``: ``good``'s archive with ``edit(entries, root)`` applied to its {name: bytes}."""
    with zipfile.ZipFile(good) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    root = next(iter(entries)).split("/")[0]
    edit(entries, root)
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _edit_json(entries, name, change) -> None:
    document = json.loads(entries[name])
    change(document)
    entries[name] = json.dumps(document).encode()


def _pickled_entry(entries, root, command, folder: str, kind: str, name: str) -> None:
    """The first entry of ``folder``'s config marked pickled (use_pickle), its payload a pickle running ``command``."""
    def change(config):
        first = next(iter(config["config"]))
        config["config"][first].update(use_pickle=True, path_name=name)
    _edit_json(entries, f"{root}/data/{folder}/model_{kind}_config.json", change)
    entries[f"{root}/data/{folder}/{name}"] = pickle.dumps(RunsCommand(command), protocol=2)


def pickled_weight(entries, root, command):
    _pickled_entry(entries, root, command, "weights", "weights", "weight_9999")


def pickled_constant(entries, root, command):
    _pickled_entry(entries, root, command, "constants", "constants", "tensor_9999")


def sample_inputs(entries, root, command):
    """The example inputs: torch tries weights_only first, then unpickles them in full."""
    buffer = io.BytesIO()
    torch.save(((RunsCommand(command),), {}), buffer)
    entries[f"{root}/data/sample_inputs/model.pt"] = buffer.getvalue()


def sym_expression(entries, root, command):
    """A symbolic size's expression: torch reads it with sympy.sympify, which evaluates Python."""
    def change(program):
        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "expr_str":
                        node[key] = f"__import__('os').system({command!r}) or {value}"
                    else:
                        walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
        walk(program)
    _edit_json(entries, f"{root}/models/model.json", change)


def guard_code(entries, root, command):
    """Guard code: exec'd into the module's guard function, run on each call."""
    _edit_json(entries, f"{root}/models/model.json",
               lambda program: program.update(guards_code=[f"__import__('os').system({command!r}) == 0"]))


TAMPERED = {
    "pickled_weight": (pickled_weight, r"weight '[^']+' is stored pickled \(use_pickle"),
    "pickled_constant": (pickled_constant, r"constant '[^']+' is stored pickled \(use_pickle"),
    "sample_inputs": (sample_inputs, r"data/sample_inputs/model.pt is a pickle that loads 'posix.system'"),
    "sym_expression": (sym_expression, r"models/model.json: the symbolic expression .*__import__"),
    "guard_code": (guard_code, r"models/model.json carries guard code"),
}


@pytest.mark.parametrize("kind", list(TAMPERED))
def test_a_program_that_would_run_code_is_refused_before_it_runs(good_program, tmp_path, kind):
    from zoo.apis.programs import load_program

    edit, what = TAMPERED[kind]
    marker = tmp_path / "ran"
    bad = tmp_path / f"{kind}.pt2"
    rewrite(good_program, bad, lambda entries, root: edit(entries, root, f"touch {marker}"))
    with pytest.raises(ValueError, match=what) as refused:
        load_program(bad)
    message = str(refused.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
    assert not marker.exists()
    # The tampering is real: torch's own loader runs the command (guard code runs when the module is called).
    try:
        torch.export.load(bad).module()(torch.rand(1, 3, 320, 320) * 255)
    except Exception:  # the payload is not a tensor: torch fails afterwards, the command has run
        pass
    assert marker.exists()


def test_a_program_that_calls_python_is_refused(good_program, tmp_path):
    """A node's target is looked up from ``torch`` by name ('torch.os.system' is os.system). torch 2.14's verifier
    refuses such a graph on its own as it loads; the zoo's loader refuses it before torch reads anything."""
    from zoo.apis.programs import load_program

    def call_system(entries, root):
        def change(program):
            program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
        _edit_json(entries, f"{root}/models/model.json", change)

    calls = tmp_path / "calls.pt2"
    rewrite(good_program, calls, call_system)
    with pytest.raises(ValueError, match=r"calls 'torch.os.system', which is not a torch operator"):
        load_program(calls)
    with pytest.raises(Exception, match="built-in function system.* is not an allowed operator"):
        torch.export.load(calls)


def test_a_program_that_imports_a_module_is_refused(good_program, tmp_path, monkeypatch):
    """A pytree context naming an enum: torch imports the module it names, running that module's code."""
    from zoo.apis.programs import load_program

    (tmp_path / "planted.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n"
                                         "import enum\nclass Key(enum.Enum):\n    boxes = 'boxes'\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def import_module(entries, root):
        def change(program):
            for entry in program["graph_module"]["module_call_graph"]:
                spec = json.loads(entry["signature"]["out_spec"]) if entry["signature"] else None
                if spec and "boxes" in json.dumps(spec):
                    text = json.dumps(spec).replace('\\"boxes\\"', '{\\"__enum__\\": true, '
                                                    '\\"fqn\\": \\"planted:Key\\", \\"name\\": \\"boxes\\"}')
                    entry["signature"]["out_spec"] = text
        _edit_json(entries, f"{root}/models/model.json", change)

    imports = tmp_path / "imports.pt2"
    rewrite(good_program, imports, import_module)
    with pytest.raises(ValueError, match=r"names an enum \('planted:Key'\), which torch would import"):
        load_program(imports)
    assert not (tmp_path / "imported").exists()
    try:
        torch.export.load(imports)
    except Exception:
        pass
    assert (tmp_path / "imported").exists()


def test_load_program_loads_the_zoos_export_and_refuses_what_is_not_one(good_program, tmp_path):
    from zoo.apis.programs import load_program

    pixels = torch.rand(1, 3, 320, 320) * 255
    found = load_program(good_program).module()(pixels)
    expected = torch.export.load(good_program).module()(pixels)
    assert len(found) == 1 and all(torch.equal(found[0][k], expected[0][k]) for k in ("boxes", "scores", "labels"))

    def refused(path: Path, what: str) -> None:
        with pytest.raises(ValueError, match=what) as error:
            load_program(path)
        assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)

    text = tmp_path / "notes.pt2"
    text.write_text("not a program")
    refused(text, "not a zip archive")
    checkpoint = tmp_path / "weights.pt2"  # a zip, but torch.save's, not torch.export.save's
    torch.save({"w": torch.zeros(2)}, checkpoint)
    refused(checkpoint, "not a torch.export program")
    compiled = tmp_path / "compiled.pt2"  # an AOTInductor library: torch.export.load would load its shared object
    rewrite(good_program, compiled,
            lambda entries, root: entries.update({f"{root}/data/aotinductor/model/model.so": b"\x7fELF"}))
    refused(compiled, r"unexpected entry 'data/aotinductor/model/model.so'")
    refused(tmp_path / "absent.pt2", "cannot read")
    copy = tmp_path / "copy.pt2"
    shutil.copy(good_program, copy)
    assert load_program(copy) is not None
