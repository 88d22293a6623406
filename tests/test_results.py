"""One face schema everywhere: a `Face` written as a table row (CSV / JSON / JSONL) reads back as the same
`Face`, and the app's Batch tab, ``fer-hf predict`` and the video timeline write the same rows for the same
real photos and video."""

import json

import pytest

from fer_hf.app.handlers import analyze_batch
from fer_hf.cli.commands import build_parser
from fer_hf.cli.predict import run_predict
from fer_hf.inference.results import (OUTPUT_FORMATS, face_rows, faces_from_rows, read_rows, table_fields,
                                      write_rows)
from fer_hf.inference.video import analyze_video, timeline_headers

from conftest import SAMPLES

PHOTOS = [SAMPLES / "group.jpeg", SAMPLES / "sad-baby.jpeg"]
SLIDESHOW = SAMPLES / "cc0_faces_slideshow.mp4"


def typed(rows: list, fields: list) -> list:
    """Rows read from any format with CSV strings turned back into numbers (None for empty cells)."""
    out = []
    for row in rows:
        converted = {}
        for field in fields:
            value = row.get(field)
            if isinstance(value, str) and field not in ("file", "top_emotion", "status"):
                value = float(value) if any(c in value for c in ".e") else int(value)
            converted[field] = value
        out.append(converted)
    return out


def assert_rows_close(actual: list, expected: list, tolerance: float) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.keys() == e.keys()
        for key in e:
            if isinstance(e[key], float):
                assert a[key] == pytest.approx(e[key], abs=tolerance), key
            else:
                assert a[key] == e[key], key


@pytest.mark.parametrize("suffix", OUTPUT_FORMATS)
def test_faces_round_trip_through_every_table_format(default_recognizer, tmp_path, suffix):
    labels = default_recognizer.labels
    fields = table_fields(labels)
    for photo in PHOTOS:
        faces = default_recognizer.predict(photo)
        assert faces
        path = tmp_path / f"{photo.stem}{suffix}"
        write_rows(face_rows(photo.name, faces, decimals=None), fields, path)
        rows = read_rows(path)
        assert list(rows[0]) == fields
        assert faces_from_rows(rows, labels) == faces


def test_no_face_and_error_rows_round_trip(tmp_path):
    fields = table_fields(["happy", "sad"])
    rows = face_rows("blank.png", []) + face_rows("broken.png", OSError("truncated\nfile"))
    assert [r["status"] for r in rows] == ["no face", "error: OSError: truncated file"]
    for suffix in OUTPUT_FORMATS:
        write_rows(rows, fields, tmp_path / f"t{suffix}")
        back = read_rows(tmp_path / f"t{suffix}")
        assert [{k: v for k, v in r.items() if v is not None} for r in back] == rows
        assert faces_from_rows(back, ["happy", "sad"]) == []


def test_app_cli_and_python_write_the_same_rows(default_recognizer, tmp_path):
    """The app's CSV, ``fer-hf predict``'s CSV / JSON / JSONL and `face_rows` of ``recognizer.predict``: same
    columns, same files and faces, same boxes and labels; probabilities equal to the 4 decimals the
    recognizer rounds to (the CLI classifies several images in one batch, unrounded)."""
    labels = default_recognizer.labels
    fields = table_fields(labels)
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS:
        (folder / photo.name).write_bytes(photo.read_bytes())
    expected = typed([row for photo in sorted(PHOTOS) for row in
                      face_rows(photo.name, default_recognizer.predict(photo), decimals=None)], fields)

    app = analyze_batch([str(folder / p.name) for p in sorted(PHOTOS)], output_dir=tmp_path / "app")
    assert_rows_close(typed(read_rows(app.csv_path), fields), expected, 0.0)

    tables = {}
    for suffix in OUTPUT_FORMATS:
        output = tmp_path / f"cli{suffix}"
        run_predict(build_parser().parse_args(["predict", str(folder), "--output", str(output)]),
                    recognizer=default_recognizer)
        rows = typed(read_rows(output), fields)
        for row in rows:
            row["file"] = row["file"].rsplit("/", 1)[-1]
        tables[suffix] = rows
        assert_rows_close(rows, expected, 1e-4)
    assert tables[".csv"] == tables[".json"] == tables[".jsonl"]


def test_video_timeline_and_cli_rows_share_the_face_schema(default_recognizer, tmp_path):
    labels = default_recognizer.labels
    analysis = analyze_video(SLIDESHOW, default_recognizer, sample_fps=2, progress=False)
    headers = timeline_headers(labels)
    assert headers == [f for f in table_fields(labels, with_video=True) if f not in ("file", "face_index")]
    ok = [row for row in analysis.rows if row["status"] == "ok"]
    assert ok, "the slideshow has faces"
    csv_rows = typed(read_rows(analysis.to_csv(tmp_path / "timeline.csv")), headers)
    json_rows = json.loads(analysis.to_json(tmp_path / "timeline.json").read_text())["rows"]
    assert csv_rows == typed(json_rows, headers) == typed(analysis.rows, headers)
    # the same faces as `Face` dicts, through the one row reader
    assert faces_from_rows(csv_rows, labels) == faces_from_rows(analysis.rows, labels)

    output = tmp_path / "cli.jsonl"
    run_predict(build_parser().parse_args(["predict", str(SLIDESHOW), "--sample-fps", "2", "--output", str(output)]),
                recognizer=default_recognizer)
    cli = read_rows(output)
    assert list(cli[0]) == table_fields(labels, with_video=True)
    assert faces_from_rows(cli, labels) == faces_from_rows(analysis.rows, labels)
    assert [(r["time_s"], r["frame_index"], r["track_id"]) for r in cli] == \
        [(r["time_s"], r["frame_index"], r["track_id"]) for r in analysis.rows]
