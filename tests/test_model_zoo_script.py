"""benchmarks/model_zoo.py measures only the rows it is asked for and keeps every other row of the table
with the command, date and machine that measured it; a row's accuracy comes from its training run under
--runs_dir, or stays what it was when that run is not on this machine."""

import datetime
import json
import shlex
import shutil

from conftest import REPO, load_benchmark

from fer_hf.models import build_model
from fer_hf.evaluation.profiling import count_parameters

model_zoo = load_benchmark("model_zoo")

COMMITTED = REPO / "benchmarks" / "results" / "model_zoo.json"
RELEASED_RUN = REPO / "model_cards" / "fer-vgg-fer2013" / "eval_results.json"  # a fer-vgg training run


def test_only_measures_those_rows_and_keeps_the_others(tmp_path):
    table_json, table_md = tmp_path / "model_zoo.json", tmp_path / "model_zoo.md"
    shutil.copy(COMMITTED, table_json)
    before = model_zoo.load_rows(table_json)
    assert all(row["command"] and row["machine"] for row in before.values())
    runs = tmp_path / "runs"
    (runs / "fer-vgg").mkdir(parents=True)
    shutil.copy(RELEASED_RUN, runs / "fer-vgg" / "eval_results.json")

    # 1. ferplus-baseline re-timed; its run is not under --runs_dir: its accuracy columns stay
    argv = ["--only", "ferplus-baseline", "--repeats", "3", "--runs_dir", str(runs), "--json", str(table_json),
            "--output", str(table_md)]
    rows = {row["name"]: row for row in model_zoo.main(argv)}
    assert list(rows) == [name for name, *_ in model_zoo.ARCHITECTURES if name in before]
    for name, row in rows.items():
        if name != "ferplus-baseline":
            assert row == before[name]
    measured, old = rows["ferplus-baseline"], before["ferplus-baseline"]
    assert measured["parameters"] == count_parameters(build_model("fer_vgg", "ferplus-baseline")) == old["parameters"]
    assert measured["ms_per_face_batch1"] > 0 and measured["ms_per_face_batch64"] > 0
    assert measured["command"] == "python benchmarks/model_zoo.py " + " ".join(shlex.quote(a) for a in argv)
    assert measured["date"] == datetime.date.today().isoformat()
    for key in model_zoo.ACCURACY_KEYS:
        assert measured[key] == old[key]

    # 2. fer-vgg measured with a run under --runs_dir: its accuracy is that run's, not the committed row's
    rows = {row["name"]: row for row in model_zoo.main(
        ["--only", "fer-vgg", "--repeats", "3", "--runs_dir", str(runs), "--json", str(table_json),
         "--output", str(table_md)])}
    results = json.loads(RELEASED_RUN.read_text())
    assert rows["fer-vgg"]["private_test_accuracy"] == results["test"]["accuracy"]
    assert rows["fer-vgg"]["private_test_accuracy"] != before["fer-vgg"]["private_test_accuracy"]
    assert rows["fer-vgg"]["train_command"] == results["command"]
    assert rows["ferplus-baseline"] == measured  # kept from the first call
    assert json.loads(table_json.read_text())["rows"] == list(rows.values())

    text = table_md.read_text()
    assert f"{results['test']['accuracy'] * 100:.2f}%" in text
    assert f"`{measured['command']}` ({measured['date']}; {measured['machine']}): ferplus-baseline" in text
    kept = before["fer-conv1x1"]
    assert f"`{kept['command']}` ({kept['date'] or 'date not recorded'}; {kept['machine']}): fer-conv1x1" in text
