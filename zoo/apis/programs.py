"""Loading a ``torch.export`` program (``.pt2``) without letting the file run code: ``load_program(path)``.

``torch.export.load`` has no weights-only mode. A ``.pt2`` (a zip, as torch 2.14 writes it) can make it, or the module
it returns, run code in four ways, each checked here on the archive's bytes, before anything in it is unpickled or
evaluated:

- pickles: a weight or constant marked ``use_pickle`` in ``data/weights/<model>_weights_config.json`` or
  ``data/constants/<model>_constants_config.json`` is read with ``torch.load(weights_only=False)``; a constant stored
  as ``custom_obj_*`` / ``opaque_obj_*`` is unpickled whatever its flag says; ``data/sample_inputs/<model>.pt`` is read
  weights-only first and, if that fails, unpickled in full; legacy ``data/weights/<model>.pt`` files are unpickled too.
  The zoo's programs store every tensor raw (``use_pickle: false``, ``weight_N`` / ``tensor_N``); their sample inputs
  pickle only tensors, and that pickle's imports are read (``pickletools``, which runs nothing) and must be those a
  tensor needs.
- Python in ``models/<model>.json``: each symbolic size's ``expr_str`` is read with ``sympy.sympify``, which evaluates
  it (it must be sympy constructors on literals); ``guards_code`` is ``exec``'d into the module's guard function (the
  zoo's programs have none); a pytree context naming an ``__enum__`` makes torch import the module it names.
- The graph: each node's ``target`` is resolved by attribute lookup from ``torch`` and called when the program runs; it
  must be a torch operator (``torch.ops.aten|prims|torchvision|higher_order.*``) or one of the arithmetic and
  comparison functions of ``_operator``, ``math`` and ``torch.sym_*`` that export writes (torch 2.14's verifier,
  named in the file, refuses other calls as it loads too; this is a second check, made before torch reads anything).
- Compiled code: an AOTInductor library (``data/aotinductor/``) is a shared object torch loads. Every archive entry must
  be one torch.export.save writes for a program (weights, constants, their configs, the model, its sample inputs, extra
  text files); anything else is refused.

Torch reads the archive with its own zip reader; the check reads it with that reader and also requires Python's zip
reader to see the same entries (torch's fallback for old-format files uses Python's). The check follows torch 2.14's
format (archive version 0) and refuses what it does not know. It closes the ways this format is known to run code
from the file as it loads and runs; it does not make a program trustworthy (its graph and weights still compute
whatever they were made to, and a file can still be made slow or huge to load). Load programs only from sources you
trust.

This file imports torch and the standard library only: a deployment can copy it beside its programs.
"""
from __future__ import annotations

import ast
import io
import json
import pickletools
import re
import zipfile
from pathlib import Path

import torch

ARCHIVE_VERSION = "0"  # what torch 2.14 writes in archive_version
_NAME = r"[A-Za-z0-9_]+"
_ENTRIES = re.compile("|".join((
    r"archive_format", r"archive_version", r"byteorder", r"\.data/version", r"\.data/serialization_id",
    rf"models/{_NAME}\.json", rf"data/weights/{_NAME}_weights_config\.json",
    rf"data/constants/{_NAME}_constants_config\.json", rf"data/sample_inputs/{_NAME}\.pt",
    r"data/weights/weight_\d+", r"data/constants/tensor_\d+", r"extra/[^/]+",
)))
_PAYLOAD = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}
# the entries of a torch.save archive (the sample inputs), and what its pickle may import: a tensor's rebuild
_SAVED_ENTRIES = re.compile(r"data\.pkl|data/\d+|version|\.data/version|byteorder|\.format_version|"
                            r"\.storage_alignment|\.data/serialization_id")
_TENSOR_GLOBALS = re.compile(r"torch\._utils _rebuild_tensor_v2|collections OrderedDict|torch [A-Za-z0-9]*Storage")
_UNCHECKED_OPCODES = {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID"}
# graph targets: torch operators, and the functions on sizes export writes
_TARGETS = re.compile(
    r"torch\.ops\.(aten|prims|torchvision|higher_order)\.(_?[A-Za-z][A-Za-z0-9_]*|__i?(and|or|xor|lshift|rshift)__)"
    r"(\.[A-Za-z][A-Za-z0-9_]*)?"
    r"|_operator\.(add|sub|mul|truediv|floordiv|mod|pow|neg|pos|abs|eq|ne|lt|le|gt|ge|and_|or_|xor|not_|invert"
    r"|lshift|rshift|getitem|truth)"
    r"|math\.[a-z][a-z0-9_]*"
    r"|torch\.(sym_[a-z_]+|_sym_sqrt|_check|_check_is_size|_assert|_assert_async|_assert_scalar)"
    r"|torch\._C\._set_grad_enabled|torch\.autograd\.grad_mode\.set_grad_enabled"
    r"|torch\.amp\.autocast_mode\._(enter|exit)_autocast")
# what a symbolic size's expression (sympy's srepr) may call: sympy's constructors and torch's size functions
_SYMPY = frozenset((
    "Symbol", "Dummy", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Min", "Max", "Abs", "Mod", "floor",
    "ceiling", "GreaterThan", "LessThan", "StrictGreaterThan", "StrictLessThan", "Equality", "Unequality", "Eq", "Ne",
    "Ge", "Gt", "Le", "Lt", "And", "Or", "Not", "Piecewise", "ExprCondPair", "true", "false", "oo", "zoo", "nan",
    "Infinity", "NegativeInfinity", "IntInfinity", "NegativeIntInfinity", "Half", "One", "Zero", "NegativeOne",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift",
    "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity"))
_LITERAL = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9.eE+-]+")


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """The program in ``path``, read with ``torch.export.load`` once ``check_program`` has passed its bytes (the
    bytes checked are the bytes loaded). ``load_program(path).module()`` is the callable."""
    data = _read(path)
    check_program(data, str(path))
    return torch.export.load(io.BytesIO(data))


def check_program(program: str | Path | bytes, name: str | None = None) -> None:
    """Raise a one-line ValueError, ``<name>: <what was found>``, if the .pt2 (a path, or its bytes with ``name``)
    is not a torch.export program or carries anything torch would unpickle or run as Python; unpickles nothing."""
    data = program if isinstance(program, bytes) else _read(program)
    where = name if name is not None else str(program)
    records = _records(data, where)
    models = [m.group(1) for r in records if (m := re.fullmatch(rf"models/({_NAME})\.json", r))]
    if not models:
        raise ValueError(f"{where}: not a torch.export program (no models/*.json in the archive)")
    for model in models:
        for kind in ("weights", "constants"):
            _check_payloads(records, f"data/{kind}/{model}_{kind}_config.json", kind, where)
        _check_sample_inputs(records, f"data/sample_inputs/{model}.pt", where)
        _check_graph(records, f"models/{model}.json", where)


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the program ({err.strerror or err})") from None


def _shown(value, limit: int = 80) -> str:
    """A name from the file, quoted on one line and cut short."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _records(data: bytes, where: str) -> dict[str, bytes]:
    """The archive's metadata entries (JSON configs, the models, the sample inputs; not the tensor bytes), read with
    torch's zip reader, after checking that Python's zip reader sees the same entries and that each is one
    torch.export.save writes for a program."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = reader.get_all_records()
    except (zipfile.BadZipFile, RuntimeError, ValueError, OSError, EOFError):
        raise ValueError(f"{where}: not a zip archive, so not a torch.export program") from None
    root = names[0].split("/")[0] if names else ""
    if len(set(names)) != len(names) or sorted(names) != sorted(f"{root}/{r}" for r in records):
        raise ValueError(f"{where}: a zip archive whose entries torch's and Python's zip readers see differently "
                         f"(duplicate names, or entries outside the archive's folder)")
    if "archive_format" not in records or reader.get_record("archive_format") != b"pt2":
        raise ValueError(f"{where}: not a torch.export program (no archive_format 'pt2' in the archive)")
    version = reader.get_record("archive_version").decode(errors="replace") if "archive_version" in records else ""
    if version != ARCHIVE_VERSION:
        raise ValueError(f"{where}: archive version {_shown(version)}; this loader checks torch 2.14's format "
                         f"(version {ARCHIVE_VERSION})")
    for record in records:
        if not _ENTRIES.fullmatch(record):
            raise ValueError(f"{where}: unexpected entry {_shown(record)} in the archive (torch.export.save writes "
                             f"none such for a program; AOTInductor libraries, custom objects and pickles are refused)")
    return {record: reader.get_record(record) for record in records
            if record.endswith((".json", ".pt")) or record.startswith("models/")}


def _json(records: dict[str, bytes], entry: str, where: str):
    if entry not in records:
        raise ValueError(f"{where}: {entry} is missing from the archive")
    try:
        return json.loads(records[entry])
    except (ValueError, RecursionError):
        raise ValueError(f"{where}: {entry} is not valid JSON") from None


def _check_payloads(records: dict[str, bytes], entry: str, kind: str, where: str) -> None:
    """Every weight (constant) stored as raw tensor bytes: ``use_pickle`` false, a ``weight_N`` (``tensor_N``) file."""
    config = _json(records, entry, where)
    payloads = config.get("config") if isinstance(config, dict) else None
    if not isinstance(payloads, dict):
        raise ValueError(f"{where}: {entry} has no 'config' of {kind}")
    what = kind[:-1]
    for fqn, meta in payloads.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise ValueError(f"{where}: {what} {_shown(fqn)} is stored pickled (use_pickle in {entry}); "
                             f"torch.export.load would unpickle it, which can run code; the zoo's programs store "
                             f"raw tensors only")
        stored = meta.get("path_name")
        if not isinstance(stored, str) or not _PAYLOAD[kind].fullmatch(stored):
            raise ValueError(f"{where}: {what} {_shown(fqn)} is stored as {_shown(stored)} (in {entry}), not as raw "
                             f"tensor bytes; torch.export.load would unpickle it, which can run code")


def _check_sample_inputs(records: dict[str, bytes], entry: str, where: str) -> None:
    """The example inputs, a torch.save archive: torch unpickles its data.pkl (weights-only first, then in full), so
    its pickle may import nothing but what rebuilds a tensor."""
    if entry not in records:
        raise ValueError(f"{where}: {entry} is missing from the archive")
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(records[entry]))
        inner = reader.get_all_records()
    except RuntimeError:
        raise ValueError(f"{where}: {entry} is not a torch.save zip archive (torch would unpickle it as a legacy "
                         f"file, which can run code)") from None
    odd = [r for r in inner if not _SAVED_ENTRIES.fullmatch(r)]
    if odd or "data.pkl" not in inner:
        raise ValueError(f"{where}: {entry} is not a torch.save archive of tensors "
                         f"({'unexpected entry ' + _shown(odd[0]) if odd else 'no data.pkl'})")
    try:
        opcodes = list(pickletools.genops(reader.get_record("data.pkl")))  # reads the opcodes, runs none
    except (ValueError, EOFError, RecursionError):
        raise ValueError(f"{where}: {entry} is not a valid pickle") from None
    for opcode, arg, _ in opcodes:
        if opcode.name in _UNCHECKED_OPCODES:
            raise ValueError(f"{where}: {entry} is a pickle using {opcode.name}, which this loader does not check; "
                             f"torch.export.load would unpickle it, which can run code")
        if opcode.name == "GLOBAL" and not _TENSOR_GLOBALS.fullmatch(str(arg)):
            raise ValueError(f"{where}: {entry} is a pickle that loads {_shown(str(arg).replace(' ', '.'))}, not "
                             f"only tensors; torch.export.load would unpickle it, which can run code")


def _check_graph(records: dict[str, bytes], entry: str, where: str) -> None:
    """models/<model>.json: no guard code, sympy expressions of constructors on literals, torch operators as the
    graph's calls, no enum in a pytree context (in the JSON, or in the JSON strings inside it)."""
    program = _json(records, entry, where)
    if not isinstance(program, dict):
        raise ValueError(f"{where}: {entry} is not a serialized program")
    if program.get("guards_code"):
        raise ValueError(f"{where}: {entry} carries guard code (guards_code), which the loaded module would run as "
                         f"Python; the zoo's programs carry none")
    pending: list[tuple[object, bool]] = [(program, False)]  # (a JSON value, whether it came from a string inside)
    while pending:
        value, nested = pending.pop()
        if isinstance(value, dict):
            if "__enum__" in value:
                raise ValueError(f"{where}: {entry} names an enum ({_shown(value.get('fqn'))}), which torch would "
                                 f"import to read the program")
            for key, item in value.items():
                if not nested and key == "expr_str" and not _plain_expression(item):
                    raise ValueError(f"{where}: {entry}: the symbolic expression {_shown(item)} is not sympy "
                                     f"constructors on literals; torch would evaluate it as Python")
                if not nested and key == "target" and isinstance(item, str) and not _TARGETS.fullmatch(item):
                    raise ValueError(f"{where}: {entry}: the graph calls {_shown(item)}, which is not a torch "
                                     f"operator; the loaded module would call it")
                pending.append((item, nested))
        elif isinstance(value, list):
            pending.extend((item, nested) for item in value)
        elif isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            try:
                pending.append((json.loads(value), True))  # a pytree spec, and the contexts inside it
            except (ValueError, RecursionError):
                pass


def _plain_expression(text) -> bool:
    """Whether ``text`` is a call tree of sympy constructors on number and name literals: what sympy's srepr writes
    for a size, and nothing that could reach Python when sympify evaluates it."""
    if not isinstance(text, str):
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load, ast.USub)):
            continue
        if isinstance(node, ast.Call):
            ok = isinstance(node.func, ast.Name) and node.func.id in _SYMPY
        elif isinstance(node, ast.Name):
            ok = node.id in _SYMPY
        elif isinstance(node, ast.keyword):
            ok = node.arg is not None and not node.arg.startswith("_")
        elif isinstance(node, ast.UnaryOp):
            ok = isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
        elif isinstance(node, ast.Constant):
            ok = isinstance(node.value, (bool, int, float)) or (
                isinstance(node.value, str) and _LITERAL.fullmatch(node.value) is not None)
        else:
            ok = False
        if not ok:
            return False
    return True
