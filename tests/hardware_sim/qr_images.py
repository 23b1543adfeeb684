"""Deterministic 1280x720 camera frames of e-code QR codes, distorted the ways cameras see them.

A validator's camera looks at a phone held at an angle, moving, under a lamp that glares
off the screen. The decoder choice (docs/ecode-input.md) is made on this set, so each
frame carries one dominant distortion (rotation, blur, noise, perspective, low contrast,
screen glare, or none) at a random strength, plus the phone and a cluttered background.
Everything comes from one ``seed``: the same seed gives the same frames, pixel for pixel.

Frames live in memory (or in a temporary directory the caller picks); none are committed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import segno

__all__ = ["DISTORTIONS", "QrFrame", "code_text", "frames", "make_frame", "render_code"]

WIDTH, HEIGHT = 1280, 720
DISTORTIONS = ("clean", "rotation", "blur", "noise", "perspective", "low-contrast", "glare")
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_QUIET_ZONE = 4  # modules of white around the symbol, as the standard asks
# Outside the warped picture: a flat grey, not a reflection (which would copy the code).
_BORDER_MODE = cv2.BORDER_CONSTANT
_BORDER_VALUE = (90, 90, 90)


@dataclass(frozen=True)
class QrFrame:
    """One frame (BGR uint8, HEIGHT x WIDTH x 3), the text encoded in it, and its distortion."""

    image: np.ndarray
    text: str
    distortion: str


def code_text(rng: random.Random) -> str:
    """A realistic e-code: ``SC1:`` and a base45-looking payload of 150 to 300 characters."""
    length = rng.randint(150, 300)
    return "SC1:" + "".join(rng.choice(BASE45) for _ in range(length))


def render_code(text: str | bytes, module_px: int) -> np.ndarray:
    """The QR symbol of ``text`` as a grayscale image, quiet zone included (bytes: byte mode)."""
    symbol = segno.make_qr(text, error="m")
    matrix = np.array([list(row) for row in symbol.matrix], dtype=np.uint8)
    matrix = np.pad(matrix, _QUIET_ZONE, constant_values=0)
    gray = np.where(matrix == 1, 0, 255).astype(np.uint8)
    return cv2.resize(gray, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A cluttered, blurred colour background: a desk, a sleeve, a gate housing."""
    small = rng.integers(40, 200, size=(HEIGHT // 40, WIDTH // 40, 3), dtype=np.uint8)
    image = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(image, (0, 0), 9)


def _phone_with_code(
    text: str, rng: random.Random, np_rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float]]:
    """The frame before distortion: a phone (dark bezel, white screen) showing the code."""
    image = _background(np_rng)
    module_px = rng.randint(4, 7)
    code = render_code(text, module_px)
    size = code.shape[0]
    bezel, margin = rng.randint(15, 30), rng.randint(10, 40)
    phone_w, phone_h = size + 2 * (bezel + margin), int((size + 2 * margin) * 1.7) + 2 * bezel
    phone_h = min(phone_h, HEIGHT - 4)
    x0 = rng.randint(2, WIDTH - phone_w - 2)
    y0 = rng.randint(2, HEIGHT - phone_h - 2)
    cv2.rectangle(image, (x0, y0), (x0 + phone_w, y0 + phone_h), (25, 25, 28), thickness=-1)
    sx0, sy0 = x0 + bezel, y0 + bezel
    cv2.rectangle(
        image, (sx0, sy0), (x0 + phone_w - bezel, y0 + phone_h - bezel), (250, 250, 250), -1
    )
    cy = sy0 + (phone_h - 2 * bezel - size) // 2
    cx = sx0 + margin
    image[cy : cy + size, cx : cx + size] = cv2.cvtColor(code, cv2.COLOR_GRAY2BGR)
    return image, (cx + size / 2, cy + size / 2)


def _rotate(image: np.ndarray, rng: random.Random, centre: tuple[float, float]) -> np.ndarray:
    # About the code's centre, so the code stays in view as the phone turns.
    matrix = cv2.getRotationMatrix2D(centre, rng.uniform(0, 360), rng.uniform(0.85, 1.0))
    return cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), borderMode=_BORDER_MODE,
                          borderValue=_BORDER_VALUE)


def _blur(image: np.ndarray, rng: random.Random) -> np.ndarray:
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(1.0, 3.0))
    length = rng.randint(5, 13)  # motion blur: the phone is still moving into place
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
    rotated = np.asarray(cv2.warpAffine(kernel, rotation, (length, length)), dtype=np.float32)
    rotated /= max(float(rotated.sum()), 1e-6)
    return cv2.filter2D(image, -1, rotated)


def _noise(image: np.ndarray, rng: random.Random, np_rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(15, 45)
    noisy = image.astype(np.float32) + np_rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _perspective(image: np.ndarray, rng: random.Random) -> np.ndarray:
    src = np.array([[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]], dtype=np.float32)
    jitter = rng.uniform(0.04, 0.16)
    dst = src + np.array(
        [[rng.uniform(-1, 1) * jitter * WIDTH, rng.uniform(-1, 1) * jitter * HEIGHT] for _ in src],
        dtype=np.float32,
    )
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, matrix, (WIDTH, HEIGHT), borderMode=_BORDER_MODE,
                               borderValue=_BORDER_VALUE)


def _low_contrast(image: np.ndarray, rng: random.Random) -> np.ndarray:
    # Dark screen brightness in a sunlit gate: black and white end up 20-50 levels apart.
    low = rng.uniform(90, 140)
    span = rng.uniform(20, 50)
    scaled = low + image.astype(np.float32) * (span / 255.0)
    out: np.ndarray = np.clip(scaled, 0, 255).astype(np.uint8)
    return out


def _glare(image: np.ndarray, rng: random.Random) -> np.ndarray:
    # A lamp reflected in the phone's glass: a bright blob that washes out part of it.
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8) * WIDTH, rng.uniform(0.2, 0.8) * HEIGHT
    rx, ry = rng.uniform(80, 260), rng.uniform(60, 200)
    blob = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2))
    strength = rng.uniform(0.5, 0.85)
    out = image.astype(np.float32) * (1 - strength * blob[..., None]) + 255.0 * (
        strength * blob[..., None]
    )
    clipped: np.ndarray = np.clip(out, 0, 255).astype(np.uint8)
    return clipped


def make_frame(index: int, seed: int) -> QrFrame:
    """Frame ``index`` of the set for ``seed`` (distortions cycle through DISTORTIONS)."""
    rng = random.Random(seed * 1_000_003 + index)
    np_rng = np.random.default_rng(seed * 1_000_003 + index)
    text = code_text(rng)
    image, centre = _phone_with_code(text, rng, np_rng)
    distortion = DISTORTIONS[index % len(DISTORTIONS)]
    if distortion == "rotation":
        image = _rotate(image, rng, centre)
    elif distortion == "blur":
        image = _blur(image, rng)
    elif distortion == "noise":
        image = _noise(image, rng, np_rng)
    elif distortion == "perspective":
        image = _perspective(image, rng)
    elif distortion == "low-contrast":
        image = _low_contrast(image, rng)
    elif distortion == "glare":
        image = _glare(image, rng)
    # Every camera adds a little sensor noise.
    image = _noise_light(image, np_rng)
    return QrFrame(image=image, text=text, distortion=distortion)


def _noise_light(image: np.ndarray, np_rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.int16) + np_rng.integers(-4, 5, image.shape, dtype=np.int16)
    clipped: np.ndarray = np.clip(noisy, 0, 255).astype(np.uint8)
    return clipped


def frames(count: int = 200, seed: int = 7) -> Iterator[QrFrame]:
    """``count`` frames for ``seed``, generated one at a time (a 1280x720 frame is 2.7 MB)."""
    for index in range(count):
        yield make_frame(index, seed)
