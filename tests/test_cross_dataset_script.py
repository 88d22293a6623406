"""benchmarks/cross_dataset.py measures only the rows and columns it is asked for and keeps every other cell
of the table with the command and date that measured it (a model released again is measured alone)."""

import json
import shlex
import shutil

import pytest
from conftest import DATA, REPO, load_benchmark

cross_dataset = load_benchmark("cross_dataset")

COMMITTED = REPO / "benchmarks" / "results" / "cross_dataset.json"


@pytest.mark.skipif(not (DATA / "jaffe").is_dir(), reason="JAFFE not found")
def test_one_cell_is_measured_again_and_every_other_cell_is_kept(tmp_path):
    """`--models fer-vgg-fer2013 --corpora "JAFFE (all)"` on the real JAFFE images: that cell is measured again
    (the released model reproduces the committed cell within one image of 213), gets the new command and
    today's date; every other cell is the committed one, with the command that measured it; the markdown
    names both commands and which cells each measured."""
    table_json = tmp_path / "cross_dataset.json"
    shutil.copy(COMMITTED, table_json)
    before = cross_dataset.load_table(table_json)
    assert "fer-vgg-fer2013" in before and all(cell["command"] for row in before.values() for cell in row.values())
    argv = ["--data", str(DATA), "--models", "fer-vgg-fer2013", "--corpora", "JAFFE (all)",
            "--reports_dir", str(tmp_path / "reports"), "--json", str(table_json),
            "--output", str(tmp_path / "cross_dataset.md")]
    after = cross_dataset.main(argv)

    assert json.loads(table_json.read_text())["table"] == after
    cell, old = after["fer-vgg-fer2013"]["JAFFE (all)"], before["fer-vgg-fer2013"]["JAFFE (all)"]
    assert cell["num_images"] == old["num_images"] == 213
    assert abs(cell["accuracy"] - old["accuracy"]) <= 1 / 213 + 1e-9
    command = "python benchmarks/cross_dataset.py " + " ".join(shlex.quote(a) for a in argv)
    assert cell["command"] == command and cell["date"] is not None
    assert (tmp_path / "reports" / "fer-vgg-fer2013" / "jaffe" / "metrics.json").is_file()
    for model, row in before.items():
        for column, kept in row.items():
            if (model, column) != ("fer-vgg-fer2013", "JAFFE (all)"):
                assert after[model][column] == kept, (model, column)
    text = (tmp_path / "cross_dataset.md").read_text()
    assert f"| `fer-vgg-fer2013` | {after['fer-vgg-fer2013']['FER2013 PrivateTest']['accuracy'] * 100:.2f}%" in text
    assert f"- `{command}` ({cell['date']}): `fer-vgg-fer2013` (JAFFE (all))" in text
    assert f"- `{old['command']}`" in text

    with pytest.raises(SystemExit):  # a name that is not a released folder
        cross_dataset.main(argv[:2] + ["--models", "no-such-model"] + argv[4:])
