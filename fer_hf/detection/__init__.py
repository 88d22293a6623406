"""Face detection: the detectors (MTCNN, Haar, BlazeFace), the crop geometry that turns a detector's box into
the classifier's face crop, and the IoU tracker that follows faces across video frames."""
