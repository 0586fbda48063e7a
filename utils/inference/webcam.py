"""Live webcam inference: the result of every camera frame in a window until ``q``."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

import cv2

from data.sources import Media, SourceError
from utils.inference.compose import OutputType, compose, parse_output_type

if TYPE_CHECKING:  # torch is imported only by the torch engine
    from utils.inference.predictor import Predictor

logger = logging.getLogger(__name__)
WINDOW = "InSPyReNet (q quits)"


def open_webcam(media: Media) -> str | None:
    """Check the display and open the camera; the one-line problem, or None when both work."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return f"{media.name}: no display to show the live window (DISPLAY is not set)"
    try:
        media.open()
    except SourceError as error:
        return str(error)
    return None


def run_webcam(
    predictor: Predictor,
    media: Media,
    output_type: OutputType,
    threshold: float | None = None,
    reverse: bool = False,
) -> int:
    """Show the live result of an opened camera in a window until ``q`` or the window closes."""
    display_type = (
        parse_output_type("white", output_type.foreground) if output_type.has_alpha else output_type
    )
    try:
        for frame in media:
            saliency = predictor.predict(frame.image)
            picture = compose(frame.image, saliency, display_type, threshold, reverse)
            if picture.ndim == 3:
                picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
            cv2.imshow(WINDOW, picture)
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
            if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                break
    except cv2.error as error:
        problem = str(error).strip().splitlines()[-1] if str(error).strip() else "OpenCV error"
        logger.error("%s: cannot show the live window (%s)", media.name, problem)
        return 1
    finally:
        media.close()
        cv2.destroyAllWindows()
    return 0
