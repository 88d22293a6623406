from pathlib import Path
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model_cards" / "fer-vgg-fer2013"
class FaceExpressionRecognizer:  # placeholder replaced below
    pass
