"""`make train`'s demo job end to end: wall-clock seconds and VOC07 mAP@0.5, as a newcomer would see them.

Usage: python benchmarks/make_train.py [--env-avx2] [--out FILE] [--run-dir DIR] [OVERRIDE ...]

Runs `zoo-train --config-name demo` (conf/demo.yaml: ssd_demo on 160-px synthetic shapes) as a child process, as
`make train` runs it once the venv is installed, and times the whole child with time.perf_counter: interpreter and
imports, config composition, drawing the data, training, the final evaluation, the plots and the printed table
(installing excluded). Then it reads the run's results.json and prints one line: the machine, the command, the wall
seconds, the mAP, and the training loop's own seconds from results.json.

--env-avx2 emulates a 2-core AVX2 machine on a CPU with wider vector units: the child gets
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2, and trainer.amp=false, since the trainer picks
bfloat16 autocast wherever the CPU has bfloat16 instructions (on a real AVX2 CPU it trains in float32 by itself).
It restricts the instructions, not the speed: on the 2-core Xeon (AMX) where the demo was tuned, the default recipe
(`zoo-train trainer.amp=false`, steps 30-130) trained at 29 images/s under it, where the 2-core AMD EPYC (AVX2) of
make_train_avx2.txt and train_throughput_workers.txt trained at 12-14, so times taken this way can be ~2x short.
--out FILE also appends the line to FILE. --run-dir DIR keeps the run there (default: a temporary folder, removed
afterwards). Further arguments are zoo-train overrides, appended to the command.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
DEMO = ["--config-name", "demo"]


def zoo_train() -> str:
    """The zoo-train next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "zoo-train"
    found = str(beside) if beside.exists() else shutil.which("zoo-train")
    if not found:
        sys.exit("make_train.py: no zoo-train next to this Python or on PATH (run `make install` first)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-avx2", action="store_true",
                        help="emulate AVX2: set " + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items())
                        + " for the child, and trainer.amp=false")
    parser.add_argument("--out", type=Path, help="also append the result line to this file")
    parser.add_argument("--run-dir", type=Path, help="the run folder to keep (default: a temporary one, removed)")
    parser.add_argument("overrides", nargs="*", help="more zoo-train overrides")
    args = parser.parse_args()
    if args.env_avx2:  # before torch is imported, so that machine() below names what the child runs with
        os.environ.update(AVX2_ENV)

    import torch

    from zoo.utils.provenance import code_version, machine

    header = machine(torch.get_num_threads())
    if args.env_avx2:
        header += " [AVX2 emulated]"
    keep = args.run_dir is not None
    run_dir = args.run_dir.resolve() if keep else Path(tempfile.mkdtemp(prefix="make_train_"))
    command = [zoo_train(), *DEMO, f"hydra.run.dir={run_dir}", *(["trainer.amp=false"] if args.env_avx2 else []),
               *args.overrides]
    shown = " ".join([*(f"{k}={v}" for k, v in AVX2_ENV.items() if args.env_avx2),
                      "zoo-train", *map(shlex.quote, command[1:])])
    if not keep:  # a fresh name each time: the line says where it went, not which
        shown = shown.replace(str(run_dir), "<tmp>")
    try:
        start = time.perf_counter()
        code = subprocess.run(command, env=os.environ.copy()).returncode
        wall = time.perf_counter() - start
        if code != 0:
            sys.exit(f"make_train.py: zoo-train exited with status {code} after {wall:.1f} s: {shown}")
        results = json.loads((run_dir / "results.json").read_text())
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    metric = results["metrics"]["voc07_map50"]
    line = (f"{datetime.date.today()} | {header} | code {code_version()} | {shown} | wall {wall:.1f} s "
            f"({wall / 60:.2f} min) | voc07_map50 {metric:.4f} | train_seconds {results.get('train_seconds')} | "
            f"steps {results.get('steps')}")
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
