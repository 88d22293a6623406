"""Writes examples/cc0_faces_slideshow.mp4, the app's example video, from the example photos in examples/: 2 s of
slow zoom over each of four photos, 640x360, 15 frames/s, H.264 (PyAV). Run from the repository root:
``python utils/make_example_video.py``. The result is derived from CC0 / Pexels photos only (see
examples/README.md)."""

from pathlib import Path

import av
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent.parent / "examples"
PHOTOS = ["surprised.jpeg", "happy-baby.jpeg", "sad-baby.jpeg", "group.jpeg"]
WIDTH, HEIGHT, FPS, SECONDS_EACH, ZOOM = 640, 360, 15, 2, 1.15


def frames(photo: Image.Image, count: int):
    """``count`` RGB frames zooming from the whole photo (cropped to 16:9 around its centre) to ``ZOOM``x."""
    scale = min(photo.width / WIDTH, photo.height / HEIGHT)
    for i in range(count):
        zoom = 1 + (ZOOM - 1) * i / max(1, count - 1)
        w, h = WIDTH * scale / zoom, HEIGHT * scale / zoom
        left, top = (photo.width - w) / 2, (photo.height - h) / 2
        yield np.asarray(photo.resize((WIDTH, HEIGHT), Image.BILINEAR, box=(left, top, left + w, top + h)))


def main(output: Path = HERE / "cc0_faces_slideshow.mp4") -> Path:
    with av.open(str(output), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "28"}
        for name in PHOTOS:
            with Image.open(HERE / name) as photo:
                for pixels in frames(photo.convert("RGB"), FPS * SECONDS_EACH):
                    for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                        container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return output


if __name__ == "__main__":
    print(main())
