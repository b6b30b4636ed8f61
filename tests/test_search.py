"""fastnn search: the book's hyperparameter search as an Optuna study (fastnn.search).

Few-trial searches on the bundled digits, through the command line in subprocesses (as a user and
a worker on another machine run it) and through fastnn.search in this process. The storage is a
real SQLite file, or a real PostgreSQL server started here from the system's binaries
(tests/pgserver.py): nothing is mocked.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from fastnn import search as fsearch  # noqa: E402

import pgserver  # noqa: E402

# a small search: 250 digits (200 train / 50 validation: 2 steps an epoch), two hidden layers of
# 20, 3 epochs
SMALL = ["--train-size", "250", "--hidden", "20x2", "--epochs", "3", "--no-progress"]


def fastnn_search(*args, check=True, **kwargs):
    """Run `fastnn search ARGS` in a subprocess; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "fastnn", "search", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def trials_of(storage, study="fastnn-search"):
    return optuna.load_study(storage=storage, study_name=study).get_trials(deepcopy=False)


def sqlite(tmp_path, name="s.db"):
    return f"sqlite:///{tmp_path / name}"


def test_seeded_search_is_reproducible(tmp_path):
    """A fixed seed: the same sampled parameters and the same results in two fresh studies."""
    runs = []
    for name in ("a.db", "b.db"):
        out = tmp_path / f"{name}.json"
        proc = fastnn_search(*SMALL, "--trials", "3", "--seed", "7", "--storage",
                             sqlite(tmp_path, name), "--json", str(out))
        assert "Best-1 (val acc: " in proc.stdout and "| lr: " in proc.stdout
        runs.append(json.loads(out.read_text()))
    a, b = ([(t["number"], t["params"], t["value"], t["val_acc"]) for t in run["trials"]]
            for run in runs)
    assert a == b
    assert len({json.dumps(p["params"]) for p in runs[0]["trials"]}) == 3  # three distinct draws
    lrs = [t["params"]["lr"] for t in runs[0]["trials"]]
    assert all(1e-6 <= lr <= 1e-2 for lr in lrs)  # the book's range


def test_seeded_trial_does_not_depend_on_the_process(tmp_path):
    """The same seed through the library in this process gives the CLI's trials."""
    settings = fsearch.Settings(train_size=250, epochs=3,
                                space=fsearch.SearchSpace(hidden=((20, 20),)))
    study = fsearch.search(settings, 2, storage=sqlite(tmp_path, "lib.db"), seed=11)
    lib = [(r["params"]["lr"], r["value"]) for r in sorted(fsearch.results(study),
                                                          key=lambda r: r["number"])]
    out = tmp_path / "cli.json"
    fastnn_search(*SMALL, "--trials", "2", "--seed", "11", "--storage", sqlite(tmp_path, "cli.db"),
                  "--json", str(out))
    cli = [(t["params"]["lr"], t["value"]) for t in
           sorted(json.loads(out.read_text())["trials"], key=lambda t: t["number"])]
    assert lib == cli


def test_resume_adds_trials(tmp_path):
    storage = sqlite(tmp_path)
    fastnn_search(*SMALL, "--trials", "2", "--storage", storage)
    first = trials_of(storage)
    proc = fastnn_search(*SMALL, "--trials", "3", "--storage", storage)
    trials = trials_of(storage)
    assert len(first) == 2 and len(trials) == 5
    assert [t.number for t in trials] == list(range(5))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert "5 finished trials" in proc.stdout
    # the study keeps its seed: the first two trials are untouched
    assert [t.params for t in trials[:2]] == [t.params for t in first]


def test_resume_with_other_settings_is_refused(tmp_path):
    storage = sqlite(tmp_path)
    fastnn_search(*SMALL, "--trials", "1", "--storage", storage)
    proc = fastnn_search(*SMALL, "--epochs", "4", "--trials", "1", "--storage", storage,
                         check=False)
    assert proc.returncode == 2
    assert "other settings" in proc.stderr and "epochs: 3 stored, 4 asked" in proc.stderr
    assert len(trials_of(storage)) == 1


@pytest.mark.parametrize("half", ["fastnn", "reference"])
def test_trial_gives_the_trainers_accuracies(half):
    """train_trial's loop (the Trainer's steps without the mini-batch loss) records what volume 1's
    Trainer records, with batch norm, dropout and weight decay, whose state the loss could move."""
    import fastnn
    lib = fastnn if half == "fastnn" else fastnn.reference
    settings = fsearch.Settings(train_size=250, epochs=3)
    data = fsearch.load_search_data(settings, 5)
    params = dict(hidden=(20, 20), lr=0.05, weight_decay=1e-3, optimizer="momentum",
                  batchnorm=True, dropout=0.2)
    val, train = fsearch.train_trial(lib, data, settings, params, (5, 0))
    net = lib.MultiLayerNetExtend(64, [20, 20], 10, weight_decay_lambda=1e-3, use_batchnorm=True,
                                  use_dropout=True, dropout_ration=0.2,
                                  seed=np.random.default_rng([5, 0, 1]))
    trainer = lib.Trainer(net, data.x_train, data.t_train, data.x_val, data.t_val, epochs=3,
                          optimizer="Momentum", optimizer_param={"lr": 0.05}, verbose=False,
                          rng=np.random.default_rng([5, 0, 2]))
    for _ in range(trainer.max_iter):
        trainer.train_step()
    assert len(val) == 3 and val == trainer.test_acc_list and train == trainer.train_acc_list


def test_two_workers_share_one_sqlite_study(tmp_path):
    """--jobs 2: each trial runs once, and the trial count is the sum asked."""
    storage = sqlite(tmp_path)
    out = tmp_path / "r.json"
    fastnn_search(*SMALL, "--trials", "5", "--jobs", "2", "--seed", "3", "--storage", storage,
                  "--json", str(out))
    trials = trials_of(storage)
    assert len(trials) == 5 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    # each trial number once, and the seeded draws are those of one worker
    single = tmp_path / "one.json"
    fastnn_search(*SMALL, "--trials", "5", "--seed", "3", "--storage", sqlite(tmp_path, "one.db"),
                  "--json", str(single))
    by_number = {t["number"]: (t["params"], t["value"]) for t in json.loads(single.read_text())["trials"]}
    assert {t["number"]: (t["params"], t["value"]) for t in json.loads(out.read_text())["trials"]} == by_number


def test_two_processes_on_one_study_add_up(tmp_path):
    """Two `fastnn search` commands at once on one study, as on two machines."""
    storage = sqlite(tmp_path)
    fastnn_search(*SMALL, "--trials", "1", "--storage", storage)  # create the study first
    procs = [subprocess.Popen([sys.executable, "-m", "fastnn", "search", *SMALL, "--trials", n,
                               "--storage", storage], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in ("3", "4")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = trials_of(storage)
    assert len(trials) == 8 and sorted(t.number for t in trials) == list(range(8))
    assert all(t.state.name == "COMPLETE" for t in trials)


def test_median_pruner_and_tpe_run(tmp_path):
    storage = sqlite(tmp_path)
    fastnn_search("--train-size", "250", "--hidden", "20x2", "--epochs", "8", "--no-progress",
                  "--trials", "12", "--sampler", "tpe", "--pruner", "median", "--seed", "1",
                  "--storage", storage)
    states = [t.state.name for t in trials_of(storage)]
    assert len(states) == 12 and set(states) <= {"COMPLETE", "PRUNED"}
    assert "COMPLETE" in states


def test_searched_dimensions_are_columns(tmp_path):
    out = tmp_path / "r.json"
    proc = fastnn_search(*SMALL, "--trials", "4", "--seed", "2", "--storage", sqlite(tmp_path),
                         "--optimizer", "sgd,adam", "--hidden", "20x2,10x1", "--batchnorm",
                         "search", "--dropout", "0:0.3", "--json", str(out))
    line = next(l for l in proc.stdout.splitlines() if l.startswith("Best-1 "))
    for column in ("lr: ", "weight decay: ", "dropout: ", "optimizer: ", "hidden: ", "batchnorm: "):
        assert column in line
    params = [t["params"] for t in json.loads(out.read_text())["trials"]]
    assert {p["optimizer"] for p in params} <= {"sgd", "adam"}
    assert all(0 <= p["dropout"] <= 0.3 for p in params)


def test_plot_and_json(tmp_path):
    pytest.importorskip("matplotlib")
    plot, out = tmp_path / "best.png", tmp_path / "all.json"
    fastnn_search(*SMALL, "--trials", "3", "--storage", sqlite(tmp_path), "--plot", str(plot),
                  "--json", str(out))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(out.read_text())
    assert data["settings"]["epochs"] == 3 and len(data["trials"]) == 3
    for t in data["trials"]:
        assert t["state"] == "COMPLETE" and len(t["val_acc"]) == 3 == len(t["train_acc"])
        assert t["value"] == t["val_acc"][-1]


@pytest.fixture(scope="module")
def one_trial_study(tmp_path_factory):
    """A SQLite file holding a study of one SMALL trial (made once; tests copy it)."""
    path = tmp_path_factory.mktemp("study") / "s.db"
    fastnn_search(*SMALL, "--trials", "1", "--storage", f"sqlite:///{path}")
    return path


@pytest.mark.parametrize("args, message", [
    (["--storage", "redis://localhost/0"], "unknown storage"),
    (["--storage", "fastnn-search.db"], "unknown storage"),
    (["--lr", "1e-2:1e-6"], "low must be below high"),
    (["--weight-decay", "0:1e-4"], "log-scale range needs low > 0"),
    (["--trials", "0"], "trials must be positive"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--optimizer", "sgd,lbfgs"], "unknown lbfgs"),
    (["--hidden", "100x0"], "hidden layers must be"),
    (["--dropout", "0:1"], "dropout must lie in [0, 1)"),
    (["--validation-rate", "1.5"], "validation rate must lie in (0, 1)"),
    (["--data", "mnist:/nonexistent"], "--data mnist:/nonexistent"),
])
def test_bad_input_is_one_line_and_leaves_the_study(tmp_path, one_trial_study, args, message):
    before = one_trial_study.read_bytes()
    (tmp_path / "s.db").write_bytes(before)
    storage = sqlite(tmp_path)
    proc = fastnn_search(*SMALL, "--trials", "1", "--storage", storage, *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
    assert (tmp_path / "s.db").read_bytes() == before


def test_without_optuna_one_line(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None; from fastnn.cli import main; "
            "sys.exit(main(['search', '--trials', '1']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "fastnn search needs optuna: pip install 'fastnn[search]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no database file made


# --------------------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of this machine's own, started for these tests (required in CI)."""
    pytest.importorskip("psycopg2")
    if pgserver.binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs a PostgreSQL server: apt-get install postgresql")
        pytest.skip("no PostgreSQL server binaries on this machine")
    server = pgserver.Server()
    yield server.url
    server.stop()


def test_postgres_two_workers_one_killed_mid_trial(postgres):
    """Two workers on one PostgreSQL study; one is killed (SIGKILL) in the middle of a trial.
    The next trial a worker starts after the grace period marks the silent trial failed, and a
    worker runs it again with the same parameters (Optuna's retry rule): no trial lost, none run
    twice beyond that retry. The survivor finds it when its trials outlast the grace period; when
    they do not (a fast machine), a third worker started after it does."""
    study = "killed"
    # trials of about a second on the pure-NumPy half; the survivor runs long enough to pass the
    # victim's grace period of 3 heartbeats
    common = ["--train-size", "500", "--hidden", "100x6", "--epochs", "30", "--reference",
              "--no-progress", "--storage", postgres, "--study", study, "--heartbeat", "1",
              "--seed", "5"]
    fastnn_search(*common, "--trials", "1")  # the study exists before both workers start
    victim = subprocess.Popen([sys.executable, "-m", "fastnn", "search", *common, "--trials", "3"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    survivor = subprocess.Popen([sys.executable, "-m", "fastnn", "search", *common, "--trials",
                                 "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def victims_running():
        return [t.number for t in trials_of(postgres, study) if t.state.name == "RUNNING"
                and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]

    # stopped (SIGSTOP) before it is looked at, so that the trial seen running is the one it dies in
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.05)
        if victims_running():
            victim.send_signal(signal.SIGSTOP)
            running = victims_running()
            if not running:  # stopped between two trials
                victim.send_signal(signal.SIGCONT)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    assert running and victims_running() == running, "the victim was not killed mid-trial"
    killed = running[0]
    _, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    if victims_running():  # the survivor finished within the grace period (3 heartbeats)
        time.sleep(max(0.0, killed_at + 3.5 - time.monotonic()))
        fastnn_search(*common, "--trials", "1")

    trials = trials_of(postgres, study)
    by_number = {t.number: t for t in trials}
    assert by_number[killed].state.name == "FAIL"
    retries = [t for t in trials
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == by_number[killed].params
    survivor_trials = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{survivor.pid}")]
    assert len(survivor_trials) == 10
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    # every complete trial ran a different trial's draws: nothing ran twice but the retry
    origins = [fsearch.origin(t) for t in complete]
    assert len(origins) == len(set(origins))
    assert not [t for t in trials if t.state.name == "RUNNING"]


def test_postgres_jobs_two(postgres, tmp_path):
    out = tmp_path / "r.json"
    fastnn_search(*SMALL, "--trials", "4", "--jobs", "2", "--storage", postgres, "--study", "jobs",
                  "--seed", "9", "--json", str(out))
    trials = trials_of(postgres, "jobs")
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert len(json.loads(out.read_text())["trials"]) == 4
