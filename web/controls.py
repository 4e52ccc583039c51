"""The restore settings as the page shows them (the Photo and Video tabs build the same controls
here) and the values they send back, as checked options."""
from __future__ import annotations

from typing import Any

import gradio as gr

from gfp_core import options

from .engine import LABELS, MODEL_CHOICES, InvalidOptionError, RestoreOptions, VideoOptions, short

#: how the page names some choices; the choices themselves (which, and their order) are gfp_core.options',
#: and a choice without a name here shows its description from there
_SHOWN = {"all": "All faces", "largest": "The largest face", "center": "The face nearest the centre",
          "indices": "Faces by number", "parsing": "Face parsing (follows hair and skin)",
          "ellipse": "Ellipse around the landmarks", "box": "Feathered square (the original GFPGAN)",
          "lanczos": "Lanczos resize (fast)", "realesrgan_x2plus": "Real-ESRGAN x2plus",
          "realesr_general_x4v3": "Real-ESRGAN general x4v3"}


def _labelled(choices: options.Choices) -> list[tuple[str, str]]:
    return [(_SHOWN.get(name) or choices.describe(name).capitalize(), name) for name in choices.names]


FACE_LABELS = _labelled(options.SELECTS)
MASK_LABELS = _labelled(options.MASKS)
BACKGROUND_LABELS = _labelled(options.BACKGROUNDS)


def _slider(r: options.Range) -> tuple[float, float]:
    """A range's ends as a slider's minimum and maximum."""
    return r.low, r.high


# --- the controls (each call makes one, where the layout is) ----------------------------------------

def model_control(value: str) -> gr.Radio:
    return gr.Radio(list(MODEL_CHOICES), value=value, label=LABELS["model"],
                    info="v1.4: most detail; v1.3: most natural; v1.2: sharper; v1: the original "
                         "(colourises grey photos)")


def upscale_control(value: int, info: str = "size of the result") -> gr.Slider:
    return gr.Slider(*_slider(options.WEB_UPSCALE), value=value, step=1, label=LABELS["upscale"], info=info,
                     min_width=140)


def fidelity_control(value: float) -> gr.Slider:
    return gr.Slider(*_slider(options.FIDELITY), value=value, step=0.05, label=LABELS["fidelity"],
                     info="1: as published; lower: more of the face prior", min_width=140)


def visibility_control(value: float) -> gr.Slider:
    return gr.Slider(*_slider(options.VISIBILITY), value=value, step=0.05, label=LABELS["visibility"],
                     info="restored face over the original (0: untouched)", min_width=140)


def threshold_control(value: float) -> gr.Slider:
    return gr.Slider(*_slider(options.WEB_THRESHOLD), value=value, step=0.01, label=LABELS["threshold"],
                     info="lower finds more faces", min_width=140)


def faces_control(value: str) -> gr.Radio:
    return gr.Radio(FACE_LABELS, value=value, label=LABELS["select"])


def indices_control(value: str, info: str = "for 'Faces by number'") -> gr.Textbox:
    return gr.Textbox(value=value, label=LABELS["indices"], placeholder="e.g. 0, 2", info=info, min_width=140)


def detector_control(value: str) -> gr.Dropdown:
    return gr.Dropdown(list(options.DETECTORS.names), value=value, label=LABELS["detector"], min_width=140)


def mask_control(value: str) -> gr.Radio:
    return gr.Radio(MASK_LABELS, value=value, label=LABELS["mask"])


def background_control(value: str) -> gr.Radio:
    return gr.Radio(BACKGROUND_LABELS, value=value, label=LABELS["background"])


def smoothing_control(value: float) -> gr.Slider:
    return gr.Slider(*_slider(options.SMOOTHING), value=value, step=0.05, label=LABELS["smoothing"],
                     info="faces followed from frame to frame and steadied (0: each frame on its own)",
                     min_width=140)


def steady_control(value: float) -> gr.Slider:
    return gr.Slider(*_slider(options.STEADY), value=value, step=0.05, label=LABELS["steady"],
                     info="restored faces held steady while they stand still (0: off)", min_width=140)


# --- what comes back --------------------------------------------------------------------------------

def number(name: str, value: Any) -> float:
    """``value`` as a number; ``name``: the setting's canonical name (the message names its control)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise options.in_words(InvalidOptionError(f"{{setting}} must be a number, got {short(value)}", setting=name,
                                                  value=value), LABELS) from None


def _face_values(model: Any, fidelity: Any, visibility: Any, upscale: Any, detector: Any, threshold: Any,
                 faces: Any, indices: Any, mask: Any, background: Any) -> dict[str, Any]:
    """The settings both tabs take. Upscale keeps its fraction so that 3.5 is refused rather than run as 3."""
    return dict(model=model, fidelity=number("fidelity", fidelity), visibility=number("visibility", visibility),
                upscale=number("upscale", upscale), detector=detector, threshold=number("threshold", threshold),
                faces=faces, indices="" if indices is None else indices, mask=mask, background=background)


def make_options(model: Any, fidelity: Any, visibility: Any, upscale: Any, detector: Any, threshold: Any,
                 faces: Any, indices: Any, mask: Any, background: Any, output_format: Any) -> RestoreOptions:
    """The Photo tab's (or an API caller's) values as checked options."""
    checked = RestoreOptions(**_face_values(model, fidelity, visibility, upscale, detector, threshold, faces,
                                            indices, mask, background), output_format=output_format)
    checked.check()
    return checked


def make_video_options(model: Any, fidelity: Any, visibility: Any, upscale: Any, detector: Any, threshold: Any,
                       faces: Any, indices: Any, mask: Any, background: Any, smoothing: Any,
                       steady: Any = VideoOptions.steady) -> VideoOptions:
    """The Video tab's (or an API caller's) values as checked options."""
    checked = VideoOptions(**_face_values(model, fidelity, visibility, upscale, detector, threshold, faces,
                                          indices, mask, background), smoothing=number("smoothing", smoothing),
                           steady=number("steady", steady))
    checked.check()
    return checked
