import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FER_HF_DATA", REPO.parent / "shared" / "data")).resolve()
SAMPLES = DATA / "samples"
FER2013_ZIP = DATA / "fer2013" / "fer2013_images.zip"
CKPLUS = DATA / "ckplus" / "CK+48"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_collection_modifyitems(config, items):
    if not DATA.is_dir():
        skip = pytest.mark.skip(reason=f"real data folder {DATA} not found (set FER_HF_DATA)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def default_recognizer():
    from fer_hf import FaceExpressionRecognizer

    return FaceExpressionRecognizer.from_pretrained()


@pytest.fixture(scope="session")
def fer2013():
    from fer_hf.data import load_fer2013

    return load_fer2013(FER2013_ZIP)
