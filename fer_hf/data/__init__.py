"""FER corpora as `datasets.DatasetDict`s with an ``image`` (`datasets.Image`), a ``label``
(`datasets.ClassLabel` of a label set, mapped by name) and an ``image_id`` column, plus subject-independent
folds and data-quality reports.

Label sets (``label_set=``): ``"fer2013"`` = `FER2013_LABELS` (0 angry, 1 disgust, 2 fear, 3 happy,
4 sad, 5 surprise, 6 neutral) and ``"ferplus"`` = `FERPLUS_LABELS` (the same 7 + 7 contempt). Classes a
corpus lacks stay empty; classes the label set lacks are dropped; both are reported (`LabelSetWarning`,
``result.label_report``). Dropped rows are reported with counts per reason (`InvalidRowsWarning`,
``result.dropped``).

=================  ==============================  =================================================
loader             corpus                          splits / extra columns
=================  ==============================  =================================================
`load_fer2013`     FER2013 (CSV, zip, folder, Hub)  train / validation / test
`load_ferplus`     FER+ votes (official layout or  train / validation / test; ``ferplus_name``,
                   fer2013new.csv + link table)     ``votes``, ``soft_label``
`load_ckplus`      CK+48                           train; ``subject``, ``sequence``
`load_jaffe`       JAFFE (faces detected, cached)  train; ``subject``, ``face_detected``, ``face_box``
`load_sfew`        SFEW 2.0 aligned faces          train / validation; ``movie``, ``clip``
=================  ==============================  =================================================
"""

from .ckplus import load_ckplus
from .common import (IMAGE_EXTENSIONS, DroppedRows, InvalidRowsWarning, LabelSetWarning, MixedTestSplitWarning,
                     dataset_to_uint8)
from ..labels import (FER2013_LABELS, FERPLUS_LABEL_ALIASES, FERPLUS_LABELS, LABEL_ALIASES, LABEL_SETS,
                      canonical_label, label_names)
from .fer2013 import USAGE_TO_SPLIT, load_fer2013, load_fer2013_csv, load_fer2013_hub, load_fer2013_image_folder
from .ferplus import (FERPLUS_FOLDERS, FERPLUS_VOTE_COLUMNS, ferplus_distribution_label, ferplus_majority_label,
                      ferplus_soft_label, load_ferplus, load_ferplus_hub)
from .folds import FoldList, group_holdout, leave_one_subject_out, stratified_kfold, subject_kfold
from .jaffe import JAFFE_CODES, NoFaceWarning, default_cache_dir, load_jaffe
from .quality import data_quality_report, drop_cross_split_duplicates, image_hashes
from .sfew import SFEW_UNUSABLE, load_sfew, sfew_movie_and_clip

__all__ = [
    "FER2013_LABELS", "FERPLUS_LABELS", "LABEL_SETS", "LABEL_ALIASES", "FERPLUS_LABEL_ALIASES", "IMAGE_EXTENSIONS",
    "USAGE_TO_SPLIT", "FERPLUS_VOTE_COLUMNS", "FERPLUS_FOLDERS", "JAFFE_CODES", "SFEW_UNUSABLE",
    "DroppedRows", "InvalidRowsWarning", "MixedTestSplitWarning", "LabelSetWarning", "NoFaceWarning",
    "canonical_label", "label_names", "dataset_to_uint8",
    "load_fer2013", "load_fer2013_csv", "load_fer2013_image_folder", "load_fer2013_hub",
    "load_ferplus", "load_ferplus_hub", "ferplus_majority_label", "ferplus_distribution_label", "ferplus_soft_label",
    "load_ckplus", "load_jaffe", "default_cache_dir", "load_sfew", "sfew_movie_and_clip",
    "FoldList", "group_holdout", "subject_kfold", "leave_one_subject_out", "stratified_kfold",
    "data_quality_report", "drop_cross_split_duplicates", "image_hashes",
]
