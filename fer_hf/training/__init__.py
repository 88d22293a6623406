"""Training: multi-corpus face caches, sampling, augmentation for real photos, and the training loops that
`train_accelerate.py` runs."""
