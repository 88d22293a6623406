"""Everything fer_hf draws on images (boxes, labels, probability bars, track ids) and the one colour per
expression all of those drawings and the app's charts share."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

#: RGB colour (0-255) of each expression in every drawing fer_hf makes: boxes, probability bars, video overlays and
#: the app's charts, so one expression has one colour everywhere.
EMOTION_COLORS = {"angry": (220, 40, 40), "disgust": (120, 160, 30), "fear": (150, 60, 200), "happy": (250, 190, 0),
                  "sad": (40, 110, 220), "surprise": (250, 120, 20), "neutral": (160, 160, 160),
                  "contempt": (120, 80, 40)}


def draw_faces(canvas: Image.Image, faces: list) -> Image.Image:
    """Draw each face's box, top emotion and probability on the RGB image ``canvas``, in place; returns
    ``canvas``."""
    draw = ImageDraw.Draw(canvas)
    longest = max(canvas.size)
    thickness = max(2, round(longest / 300))
    for face in faces:
        x, y, w, h = face["box"]
        color = EMOTION_COLORS.get(face["top_emotion"], (0, 200, 0))
        draw.rectangle([x, y, x + w, y + h], outline=color, width=thickness)
        # readable on small faces in big photos, not overwhelming on big faces
        font_size = int(min(max(w / 6, longest / 60, 12), max(longest / 25, 12)))
        try:
            font = ImageFont.load_default(size=font_size)
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        text = f"{face['top_emotion']} {face['top_score']:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_w, label_h = right - left + 2 * thickness, bottom - top + 2 * thickness
        # above the box; below it if there is no room; inside its top edge if there is room for neither
        if y - label_h >= 0:
            label_y = y - label_h
        elif y + h + label_h <= canvas.height:
            label_y = y + h
        else:
            label_y = y
        label_x = min(x, max(0, canvas.width - label_w))
        draw.rectangle([label_x, label_y, label_x + label_w, label_y + label_h], fill=color)
        draw.text((label_x + thickness - left, label_y + thickness - top), text, fill=(0, 0, 0), font=font)
    return canvas


def draw_probability_bars(canvas: Image.Image, faces: list) -> Image.Image:
    """Draw each face's probabilities as horizontal bars (one per emotion, in the model's label order) in a
    panel beside its box (right of it, or left where there is no room), in place; returns ``canvas``."""
    if not faces:
        return canvas
    draw = ImageDraw.Draw(canvas, "RGBA")
    row = max(9, min(16, round(max(canvas.size) / 45)))
    try:
        font = ImageFont.load_default(size=row - 2)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    label_width = int(draw.textlength("surprise ", font=font))
    bar_width = 4 * row
    panel_w = label_width + bar_width + 4
    for face in faces:
        x, y, w, h = face["box"]
        names = list(face["emotions"])
        panel_h = row * len(names) + 4
        left = x + w + 4 if x + w + 4 + panel_w <= canvas.width else max(0, x - panel_w - 4)
        top = min(max(0, y), max(0, canvas.height - panel_h))
        draw.rectangle([left, top, left + panel_w, top + panel_h], fill=(0, 0, 0, 140))
        for k, name in enumerate(names):
            p = float(face["emotions"][name])
            y0 = top + 2 + k * row
            draw.text((left + 2, y0), name, fill=(255, 255, 255, 255), font=font)
            x0 = left + 2 + label_width
            draw.rectangle([x0, y0 + 2, x0 + max(1, round(p * bar_width)), y0 + row - 2],
                           fill=(*EMOTION_COLORS.get(name, (0, 200, 0)), 255))
    return canvas


def draw_track_ids(image: Image.Image, boxes, track_ids) -> Image.Image:
    """Write "#<track id>" inside the top-right corner of each box (white on black), in place."""
    if not len(track_ids):
        return image
    draw = ImageDraw.Draw(image)
    size = int(max(12, max(image.size) / 50))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for (x, y, w, h), track_id in zip(boxes, track_ids):
        text = f"#{track_id}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, size // 6)
        tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
        x0, y0 = max(0, int(x + w) - tag_w - pad), max(0, int(y)) + pad  # inside the top-right corner
        draw.rectangle([x0, y0, x0 + tag_w, y0 + tag_h], fill=(0, 0, 0))
        draw.text((x0 + pad - left, y0 + pad - top), text, fill=(255, 255, 255), font=font)
    return image
