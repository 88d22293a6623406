"""Expression analysis beyond one machine, on Ray Data (``pip install fer_hf[ray]``).

fer_hf provides the per-batch function (a stateful worker holding one `FaceExpressionRecognizer`) and the
output schema; Ray does the scheduling, data movement and retries:

- `predict_files`: what ``fer-hf predict INPUTS --engine ray`` runs: images and videos (local paths or any
  filesystem pyarrow reads: ``s3://``, ``gs://``, ``file://``) into one table (Parquet, CSV, JSON or
  JSONL), row for row the table of the single-process ``fer-hf predict``.
- `annotate`: for a Ray dataset you already hold: one row per face of each image in a column.

For one machine with several GPUs, ``accelerate launch -m fer_hf predict`` remains the simpler path;
for a Hugging Face `datasets.Dataset`, ``dataset.map(recognizer.as_map_function(), batched=True)``
(see docs/distributed.md).
"""

from .ray_runner import annotate, predict_files

__all__ = ["annotate", "predict_files"]
