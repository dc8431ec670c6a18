"""The package's imports run one way and close no circle (scripts/check_imports.py)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_imports", ROOT / "scripts" / "check_imports.py")
check_imports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_imports)


def test_no_module_imports_a_layer_above_its_own_and_no_import_circle():
    assert check_imports.problems() == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "zoo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_inside_a_function_is_found(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "models/__init__.py": "",
                               "models/head.py": "def f():\n    from zoo.engine.trainer import Trainer\n",
                               "engine/__init__.py": "", "engine/trainer.py": "Trainer = 1\n"})
    assert check_imports.problems(root) == [
        "zoo.models.head imports zoo.engine.trainer (zoo.engine is not below zoo.models)"]


def test_a_circle_within_one_package_is_found(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "data/__init__.py": "from zoo.data.a import x\n",
                               "data/a.py": "from zoo.data.b import y\nx = 1\n", "data/b.py": "from zoo.data import x\ny = 2\n"})
    assert check_imports.problems(root) == ["import circle: zoo.data -> zoo.data.a -> zoo.data.b"]
