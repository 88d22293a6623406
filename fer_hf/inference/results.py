"""What a recognition returns and how it is written: the one `Face` schema (built only by `build_faces`), the
one table row builder (`face_rows`) and the one table writer (`write_rows`, CSV / JSON / JSONL) that the app,
``fer-hf predict``, video and live all use, so the same photo gives the same row everywhere."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence, TypedDict

import numpy as np

try:  # Python >= 3.11
    from typing import NotRequired
except ImportError:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

#: Output table formats, by file extension (Parquet needs pyarrow).
OUTPUT_FORMATS = (".csv", ".json", ".jsonl", ".parquet")
#: Probabilities and scores are written with this many decimals in tables.
DECIMALS = 6
#: Columns of every face table before the per-emotion probabilities; ``status`` comes after them.
FACE_FIELDS = ["file", "face_index", "box_x", "box_y", "box_w", "box_h", "detector_score", "top_emotion",
               "top_score"]
#: The extra columns of video rows, inserted after ``file``.
VIDEO_FIELDS = ["time_s", "frame_index", "track_id"]


class Face(TypedDict):
    """One face found in an image.

    ``box``: [x, y, w, h] integer pixels, clipped to the image; ``score``: the detector's confidence;
    ``emotions``: {label: probability} in the model's label order; ``top_emotion`` / ``top_score``: the most
    probable label and its probability. Live frames add ``track_id`` and ``detected``; `predict_batch` adds
    the unrounded ``probabilities`` array."""

    box: list
    score: float
    emotions: dict
    top_emotion: str
    top_score: float
    track_id: NotRequired[int]
    detected: NotRequired[bool]
    probabilities: NotRequired[np.ndarray]


def build_faces(boxes, scores, probabilities, image_size, labels: Sequence[str],
                decimals: Optional[int] = None) -> list:
    """`Face` dicts from detector boxes (K, 4) [x1, y1, x2, y2] in pixels, detector scores (K,) and class
    probabilities (K, num_labels) of an image of ``image_size`` (width, height). Boxes are rounded to integer
    pixels and clipped to the image. ``decimals``: round scores and probabilities (None: keep them exact)."""
    width, height = image_size

    def number(value) -> float:
        return float(value) if decimals is None else round(float(value), decimals)

    faces = []
    for i, probs in enumerate(probabilities):
        x1, y1, x2, y2 = boxes[i]
        x, y = max(0, int(round(x1))), max(0, int(round(y1)))
        w = int(round(min(x2, width))) - x
        h = int(round(min(y2, height))) - y
        top = int(np.argmax(probs))
        faces.append(Face(box=[x, y, w, h], score=number(scores[i]),
                          emotions={label: number(p) for label, p in zip(labels, probs)},
                          top_emotion=labels[top], top_score=number(probs[top])))
    return faces


def error_status(error: BaseException) -> str:
    """The ``status`` of an error row: ``"error: <ExceptionType>: <message>"`` (one line)."""
    return " ".join(f"error: {type(error).__name__}: {error}".split())


def table_fields(labels: Sequence[str], with_video: bool = False) -> list:
    """Columns of a face table: `FACE_FIELDS`, one per label, ``status``; `VIDEO_FIELDS` after ``file``
    when ``with_video``."""
    fields = [*FACE_FIELDS, *labels, "status"]
    return fields[:1] + VIDEO_FIELDS + fields[1:] if with_video else fields


def face_rows(file: str, result, decimals: Optional[int] = DECIMALS, extra: Optional[dict] = None,
              per_face: Optional[Sequence[dict]] = None) -> list:
    """Table rows of one image: one per face (status ``"ok"``), else one ``"no face"`` row, or one error row
    if ``result`` is an exception. ``result``: a list of `Face` or an exception. ``extra``: columns added to
    every row (a video frame's ``time_s`` and ``frame_index``); ``per_face``: columns added to each face's row
    (its ``track_id``). Scores and probabilities are rounded to ``decimals`` (None: as they are)."""
    extra = dict(extra or {})
    if isinstance(result, BaseException):
        return [{"file": file, **extra, "status": error_status(result)}]
    if not result:
        return [{"file": file, **extra, "status": "no face"}]

    def number(value) -> float:
        return float(value) if decimals is None else round(float(value), decimals)

    rows = []
    for i, face in enumerate(result):
        x, y, w, h = face["box"]
        rows.append({"file": file, **extra, **(per_face[i] if per_face else {}), "face_index": i,
                     "box_x": x, "box_y": y, "box_w": w, "box_h": h, "detector_score": number(face["score"]),
                     "top_emotion": face["top_emotion"], "top_score": number(face["top_score"]),
                     **{k: number(p) for k, p in face["emotions"].items()}, "status": "ok"})
    return rows


def faces_from_rows(rows: list, labels: Sequence[str]) -> list:
    """The `Face` dicts of one image's table rows (`face_rows` output, or rows read back by `read_rows`, CSV
    strings included), in row order; ``[]`` for a "no face" or error row. The inverse of `face_rows`."""
    return [Face(box=[int(row[k]) for k in ("box_x", "box_y", "box_w", "box_h")], score=float(row["detector_score"]),
                 emotions={label: float(row[label]) for label in labels}, top_emotion=row["top_emotion"],
                 top_score=float(row["top_score"]))
            for row in rows if row.get("status") == "ok"]


def write_rows(rows: list, fields: Sequence[str], destination) -> None:
    """Write ``rows`` to ``destination`` (.csv, .json, .jsonl or .parquet, by extension; or an open text
    stream, as CSV) with exactly the columns ``fields``: a missing value is an empty CSV cell, JSON ``null``
    or Parquet null. `RowWriter` does the same for rows that arrive in parts.

    A file is written to a temporary file in the same folder and moved into place with ``os.replace``, so
    ``destination`` is either the old file or the complete new one, never a partial one.

    Raises:
        ValueError: for another extension. OSError: if the folder cannot be written.
    """
    if hasattr(destination, "write"):
        writer = csv.DictWriter(destination, fieldnames=list(fields), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    with RowWriter(destination, fields) as writer:
        writer.write(rows)


class RowWriter:
    """Write a face table part by part (``write`` many times, then ``close``, or use it as a context
    manager), so that a table larger than memory can be written; the file appears complete or not at all
    (a temporary file moved into place with ``os.replace`` on a clean ``close``; removed on an error).

    Formats by extension: ``.csv`` (header, then rows), ``.jsonl`` (a JSON object per line), ``.json`` (one
    list of objects), ``.parquet`` (pyarrow; column types from `parquet_schema`).

    Raises:
        ValueError: for another extension. OSError: if the folder cannot be written. ImportError: for
            ``.parquet`` without pyarrow.
    """

    def __init__(self, destination, fields: Sequence[str]):
        self.destination = Path(destination)
        self.fields = list(fields)
        self.suffix = self.destination.suffix.lower()
        if self.suffix not in OUTPUT_FORMATS:
            raise ValueError(f"Unknown output format {self.destination.suffix!r}; use one of {OUTPUT_FORMATS}")
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(prefix=f".{self.destination.name}.", suffix=".tmp",
                                                  dir=self.destination.parent)
        self.count = 0
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            os.close(handle)
            self.schema = parquet_schema(self.fields)
            self.stream = None
            self.parquet = pq.ParquetWriter(self.temporary, self.schema)
        else:
            self.parquet = None
            self.stream = os.fdopen(handle, "w", newline="" if self.suffix == ".csv" else None, encoding="utf-8")
            if self.suffix == ".csv":
                self.csv = csv.DictWriter(self.stream, fieldnames=self.fields, restval="", extrasaction="ignore")
                self.csv.writeheader()
            elif self.suffix == ".json":
                self.stream.write("[")

    def write(self, rows: list) -> None:
        """Append ``rows`` (dicts; keys outside ``fields`` are ignored)."""
        if not rows:
            return
        if self.parquet is not None:
            import pyarrow as pa

            self.parquet.write_table(pa.Table.from_pylist([{f: row.get(f) for f in self.fields} for row in rows],
                                                          schema=self.schema))
        elif self.suffix == ".csv":
            self.csv.writerows(rows)
        else:
            records = [json.dumps({f: row.get(f) for f in self.fields}) for row in rows]
            if self.suffix == ".json":
                self.stream.write(("," if self.count else "") + "\n" + ",\n".join(records))
            else:
                self.stream.write("".join(r + "\n" for r in records))
        self.count += len(rows)

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self.parquet is not None:
            self.parquet.close()
        else:
            if self.suffix == ".json":
                self.stream.write(("\n" if self.count else "") + "]\n")
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
        os.replace(self.temporary, self.destination)

    def abort(self) -> None:
        """Drop the temporary file; ``destination`` is left as it was."""
        try:
            if self.parquet is not None:
                self.parquet.close()
            else:
                self.stream.close()
        finally:
            if os.path.exists(self.temporary):
                os.unlink(self.temporary)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()


#: Integer columns of a face table; every other column but the text ones is a float.
INTEGER_FIELDS = ("face_index", "box_x", "box_y", "box_w", "box_h", "frame_index", "track_id")
#: Text columns of a face table.
TEXT_FIELDS = ("file", "top_emotion", "status")


def parquet_schema(fields: Sequence[str]):
    """The pyarrow schema of a face table with columns ``fields``: `INTEGER_FIELDS` int64, `TEXT_FIELDS`
    string, the others (scores, probabilities, ``time_s``) float64; every column nullable."""
    import pyarrow as pa

    return pa.schema([(f, pa.int64() if f in INTEGER_FIELDS else pa.string() if f in TEXT_FIELDS else pa.float64())
                      for f in fields])


def read_rows(source) -> list:
    """Rows written by `write_rows` (.csv, .json, .jsonl or .parquet), as dicts (CSV values as strings, empty
    cells as None)."""
    source = Path(source)
    suffix = source.suffix.lower()
    text = "" if suffix == ".parquet" else source.read_text(encoding="utf-8")
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix == ".csv":
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(source).to_pylist()
    raise ValueError(f"Unknown output format {source.suffix!r}; use one of {OUTPUT_FORMATS}")
