"""zoo-reproduce launch=commands|multirun: what a table still lacks, as zoo-train commands that train each run
where zoo-reproduce reads it back."""
import json
import os
import shlex
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY
from tests.engine.test_reproduce import _table
from zoo.engine.checkpoint import save_checkpoint
from zoo.tables.reproduce import reproduce
from zoo.tables.runs import compose_row
from zoo.tables.launch import launch_commands


def _overrides_of(command: str) -> list[str]:
    """The task overrides of a printed zoo-train command (Hydra's own and the launch words dropped)."""
    return [w for w in shlex.split(command)[1:] if w != "-m" and not w.startswith(("hydra.", "resume="))]


def test_each_unfinished_run_gets_the_command_that_composes_its_config_in_its_folder(tmp_path):
    table = _table("refinedet_table3")
    (tmp_path / "refinedet320_table3_full" / "seed0").mkdir(parents=True)  # finished: not trained again
    (tmp_path / "refinedet320_table3_full" / "seed0" / "results.json").write_text('{"metrics": {}}')
    started = tmp_path / "refinedet320_table3_no_tcb" / "seed1"  # interrupted: continues
    save_checkpoint({"config": ""}, started / "checkpoints" / "last.pt")
    commands = launch_commands("commands", table, "synthetic", 2, tmp_path, overrides=["trainer.max_epochs=3"])
    assert len(commands) == 7
    assert commands[0].startswith("zoo-train experiment=refinedet320_table3_full model=refinedet_lite ")
    assert commands[-1].endswith(f"seed=1 trainer.max_epochs=3 hydra.run.dir={started} resume=true")
    assert sum("resume=true" in c for c in commands) == 1
    plain = table["protocols"]["synthetic"]["overrides"]
    no_tcb = commands[-2]  # the row's ablation switches come from its experiment file, as in zoo-reproduce
    from hydra import compose, initialize_config_dir

    from zoo.config.paths import CONF_DIR
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        assert compose("train", overrides=_overrides_of(no_tcb)) == compose_row(
            "refinedet320_table3_no_tcb", plain, 0, ["trainer.max_epochs=3"])


def test_multirun_sweeps_a_rows_fresh_seeds_and_leaves_an_interrupted_run_its_own_command(tmp_path):
    table = {**_table("refinedet_table3"), "rows": ["refinedet320_table3_full", "refinedet320_table3_no_tcb"]}
    save_checkpoint({"config": ""}, tmp_path / "refinedet320_table3_no_tcb" / "seed0" / "checkpoints" / "last.pt")
    commands = launch_commands("multirun", table, "synthetic", 2, tmp_path)
    assert len(commands) == 3 and "resume=true" in commands[0]
    assert " seed=0,1 " in commands[1] and f"hydra.sweep.dir={tmp_path / 'refinedet320_table3_full'}" in commands[1]
    assert commands[2].endswith("seed=1 " f"hydra.sweep.dir={tmp_path / 'refinedet320_table3_no_tcb'} "
                                "'hydra.sweep.subdir=seed${seed}'")


def test_launching_refuses_a_protocol_whose_data_sets_a_switch_the_rows_compare(tmp_path):
    table = _table("ssd_table2")
    plain = ["model=ssd_lite", "data=synthetic", "trainer=synthetic", "evaluator=voc07"]  # keeps data.augment
    table = {**table, "protocols": {"synthetic": {**table["protocols"]["synthetic"], "overrides": plain}}}
    with pytest.raises(ValueError, match=r"augment.ssd_train.*~data.augment.ssd_train"):
        launch_commands("commands", table, "synthetic", 1, tmp_path)  # not after the commands have trained
    assert not any(tmp_path.iterdir())


def test_a_bad_launch_mode_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"launch='parallel': expected one of \['here', 'commands', 'multirun', 'slurm'\]"):
        launch_commands("parallel", _table("refinedet_table3"), "synthetic", 1, tmp_path)


def test_a_swept_row_lands_where_the_table_reads_it_back_without_training(tmp_path):
    """The printed sweep, run by Hydra, trains both seeds into out/<row>/seed<k>; zoo-reproduce then trains nothing."""
    table = {**_table("refinedet_table3"), "rows": ["refinedet320_table3_no_tcb"]}
    overrides = [*TINY, "model.input_size=128", "trainer.max_iters=1", "trainer.eval_every=0"]
    printed = subprocess.run([sys.executable, "-m", "zoo.cli.reproduce", "table=refinedet_table3", "protocol=synthetic",
                              "seeds=2", f"out={tmp_path}", "launch=multirun", "table.rows=[refinedet320_table3_no_tcb]",
                              f"overrides=[{','.join(map(json.dumps, overrides))}]"], capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr[-2000:]
    path = tmp_path / "launch_multirun.sh"
    script = path.read_text().splitlines()
    assert script[2].startswith("# Then `zoo-reproduce table=refinedet_table3") and len(script) == 5
    assert shlex.split(script[4])[:2] == ["zoo-train", "-m"]
    # As printed: run by the shell, with no environment activated (PATH without the venv's bin)
    done = subprocess.run([str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    # Asked again, nothing is left to train, and the finished runs are archived with their configs.
    assert launch_commands("commands", table, "synthetic", 2, tmp_path, overrides, archive=tmp_path / "archive") == []
    archived = json.loads((tmp_path / "archive" / "refinedet320_table3_no_tcb_seed1.json").read_text())
    assert archived["seed"] == 1 and archived["config"]["model"]["refine"] is not None
    rows = reproduce(table, "synthetic", 2, tmp_path, overrides=overrides,
                     train=lambda cfg, run_dir: pytest.fail(f"trained {run_dir} again"))
    stored = [json.loads((tmp_path / "refinedet320_table3_no_tcb" / f"seed{k}" / "results.json").read_text())
              for k in (0, 1)]
    assert rows[0].runs == [pytest.approx(100 * s["metrics"]["voc07_map50"]) for s in stored]


def test_archived_runs_are_restored_not_listed(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()  # an archived run without a stored config is restored as it is
    (archive / "refinedet320_table3_full_seed0.json").write_text(json.dumps({"metrics": {"voc07_map50": 0.8}}))
    commands = launch_commands("commands", _table("refinedet_table3"), "synthetic", 1, tmp_path / "runs",
                               archive=archive)
    assert len(commands) == 3 and not any("table3_full" in c for c in commands)
    assert (tmp_path / "runs" / "refinedet320_table3_full" / "seed0" / "results.json").is_file()


def test_an_archived_run_of_another_config_is_listed_to_train_even_after_a_report_restored_it(tmp_path):
    table = _table("refinedet_table3")
    archive = tmp_path / "archive"
    archive.mkdir()
    old = compose_row("refinedet320_table3_full", table["protocols"]["synthetic"]["overrides"], 0)
    record = {"metrics": {"voc07_map50": 0.8}, "code": "abc1234",
              "config": OmegaConf.to_container(old, resolve=True) | {"seed": 0}}
    record["config"]["trainer"]["max_epochs"] = 99  # trained with a budget the row no longer has
    (archive / "refinedet320_table3_full_seed0.json").write_text(json.dumps(record))
    runs = tmp_path / "runs"
    rows = reproduce(table, "synthetic", 1, runs, archive=archive, report_only=True)
    assert rows[0].stale == ["trainer.max_epochs"] and rows[0].runs == [80.0]  # shown, as the record it is
    commands = launch_commands("commands", table, "synthetic", 1, runs, archive=archive)
    assert len(commands) == 4 and any("table3_full" in c for c in commands)  # and trained anew
    assert not (runs / "refinedet320_table3_full" / "seed0" / "results.json").exists()
    assert json.loads((archive / "refinedet320_table3_full_seed0.json").read_text()) == record  # until replaced


def test_a_slurm_array_script_runs_each_task_as_printed(tmp_path):
    """launch=slurm writes one array task per run; a task, run as SLURM would run it (the #SBATCH lines are comments
    to bash, $SLURM_ARRAY_TASK_ID picks the run), trains that run where the table reads it back."""
    overrides = [*TINY, "model.input_size=128", "trainer.max_iters=1", "trainer.eval_every=0"]
    printed = subprocess.run([sys.executable, "-m", "zoo.cli.reproduce", "table=refinedet_table3", "protocol=synthetic",
                              "seeds=2", f"out={tmp_path}", "launch=slurm", "table.rows=[refinedet320_table3_no_tcb]",
                              "reuse=false", "slurm.gpus_per_task=0", "slurm.partition=cpu",
                              f"overrides=[{','.join(map(json.dumps, overrides))}]"], capture_output=True, text=True,
                             timeout=300)
    assert printed.returncode == 0, printed.stderr[-2000:]
    path = tmp_path / "launch_slurm.sbatch"
    assert path.is_file(), printed.stdout[-2000:]
    script = path.read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --partition=cpu" in script and "--gpus" not in script
    assert f"sbatch {path}" in printed.stdout
    done = subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "refinedet320_table3_no_tcb" / "seed1" / "results.json").is_file()
    assert not (tmp_path / "refinedet320_table3_no_tcb" / "seed0" / "results.json").exists()  # task 1 alone
