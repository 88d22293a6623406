"""Using a trained model: the recognizer (detect, crop, classify), the face results and their tables, drawing,
test-time augmentation, ONNX export, Grad-CAM explanations, the webcam (live) and video paths."""
