"""The Gradio page: controls → :class:`web.engine.RestoreEngine` → slider, face gallery, download.

``python -m web`` serves it; the Space's ``app.py`` calls :func:`main` too. The restore button is also
the API endpoint ``/restore`` (see the page's "Use via API" link, or :mod:`gradio_client`).
"""
from __future__ import annotations

import atexit
import base64
import binascii
import html
import logging
import os
import re
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from gfp_core import options
from gfp_core.errors import GFPError, InvalidImageError, WeightsNotFoundError

from .accelerator import on_accelerator, restore_job, use_engine
from .engine import (FORMAT_SUFFIXES, LABELS, MESSAGE_WORDS, MODEL_CHOICES, InvalidOptionError,
                     RestoreEngine, RestoreOptions, RestoreOutcome, one_line, short)
from .settings import WebSettings, file_size_bytes, parse_settings

log = logging.getLogger("web")

CSS = """
/* each gallery picture is a face before and after, side by side: twice as wide as high; as many to a
   row as fit at 240 px or more, whatever the number of faces */
#faces .thumbnail-item { aspect-ratio: 2 / 1 !important; }
#faces .grid-container { grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)) !important; }
#weights-note { border-left: 4px solid #d97706; background: #fffbeb; color: #78350f; padding: 4px 12px;
                border-radius: 6px; }
#weights-note p { margin: 4px 0; }
/* on a phone: the Restore button right under the photo (the settings follow it; the page scrolls to
   the result when it comes), a shorter photo box, and messages at the bottom edge, not over the result */
@media (max-width: 640px) {
  #photo { order: -2; height: 260px !important; }
  #restore { order: -1; }
  .toast-wrap { top: auto !important; bottom: 8px !important; right: 8px !important; left: 8px !important;
                width: auto !important; max-width: none !important; }
}
"""
ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = [ASSETS / "astronaut_old.jpg", ASSETS / "astronaut.jpg"]
DEFAULTS = RestoreOptions()
MESSAGE_CHARS = 240       # the longest message a visitor is shown
NAME_CHARS = 60           # an uploaded file's name as messages repeat it
TOAST_SECONDS = 8         # error messages fade instead of staying over the page

INTRO = """# GFPGAN face restoration
Restore the faces in an old, blurry or low-resolution photo with
[GFPGAN](https://github.com/TencentARC/GFPGAN) (Wang et al., CVPR 2021): upload, paste or take a photo,
press **Restore**, then drag the slider over the result to compare."""

#: on a phone the result is below the settings: bring it into view when it comes
SHOW_RESULT_JS = """() => { if (window.innerWidth <= 640) {
    document.getElementById('before-after')?.scrollIntoView({block: 'start'}); } }"""

#: the one answer for a file reference that is not a file this server received: it must not tell
#: whether some other path on the server exists
UPLOAD_LOST = "The photo did not arrive; upload it again."
FAILED = "The restore failed on the server (the error was logged). Try again, or other settings."

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


class UploadError(InvalidImageError):
    """A photo payload that does not name a file this server received."""


# --- what arrives ---------------------------------------------------------------------------------

def uploaded_path(image: Any, cache_dir: Path, scratch: Path, max_bytes: int) -> tuple[Path, str]:
    """The file behind a raw image payload (the page's upload, paste or webcam, or an API call), and
    the name the person knows it by.

    Only files that Gradio stored in its upload folder ``cache_dir`` are read (after resolving
    symbolic links and ``..``), and pasted ``data:`` URLs of at most ``max_bytes``; anything else is
    refused with one message, whether or not the path exists."""
    if image is None:
        raise UploadError("Add a photo first: upload one, paste one, or take one with the webcam.")
    if isinstance(image, str):
        data: dict = {"path": image}
    elif isinstance(image, dict):
        data = image
    elif hasattr(image, "model_dump"):  # a FileData model
        data = image.model_dump()
    else:
        raise UploadError(UPLOAD_LOST)
    url, path = data.get("url"), data.get("path")
    if isinstance(url, str) and url.startswith("data:"):
        return _pasted(url, scratch, max_bytes), "pasted image"
    if not isinstance(path, str) or not path:
        raise UploadError(UPLOAD_LOST)
    file = _stored_file(path, cache_dir)
    name = data.get("orig_name") if isinstance(data.get("orig_name"), str) else None
    return file, _short_name(name or file.name)


def _stored_file(path: str, cache_dir: Path) -> Path:
    """``path`` if it is a regular file inside ``cache_dir`` once links and ``..`` are resolved."""
    try:
        file = Path(os.path.realpath(path))
        inside = file.is_relative_to(Path(os.path.realpath(cache_dir)))
        if inside and file.is_file():
            return file
    except (OSError, ValueError):  # odd bytes in the name, too long, …
        pass
    raise UploadError(UPLOAD_LOST)


def _pasted(url: str, scratch: Path, max_bytes: int) -> Path:
    """A pasted image's data URL as a file, its size checked before anything is decoded."""
    header, _, encoded = url.partition(",")
    if len(encoded) > 4 * (max_bytes // 3 + 1) + 4:  # base64: 4 characters for every 3 bytes
        raise UploadError(f"The pasted image is larger than this demo's limit of {max_bytes / 2**20:.0f} MB; "
                          f"save it to a smaller file and upload that.")
    try:
        if ";base64" not in header:
            raise ValueError("not base64")
        payload = base64.b64decode(encoded, validate=False)
    except (ValueError, binascii.Error):
        raise UploadError("The pasted image could not be read; save it to a file and upload that.") from None
    file = scratch / "pasted.png"
    file.write_bytes(payload)
    return file


def _short_name(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


# --- what visitors are told -------------------------------------------------------------------------

_PATH = re.compile(r"(?<![\w:/.])(?:[A-Za-z]:)?[\\/](?:[^\s\\/'\"(),;]+[\\/])+[^\s\\/'\"(),;]*")
_QUOTED = re.compile(r"(['\"])([^'\"]{40})[^'\"]+\1")


def visitor_message(exc: GFPError, path: Path | None = None, name: str = "") -> str:
    """A user error as a visitor sees it: short, the upload called by its name, no server folder
    named and no long input repeated (the server log has the whole message)."""
    text = str(exc)
    if path is not None:
        text = text.replace(str(path), name)
    if isinstance(exc, WeightsNotFoundError):  # the rest lists the server's model folders
        text = text.split("\n")[0].split(" Put ")[0].rstrip(":") + " The server's administrator can add them."
    text = _PATH.sub(lambda m: _file_name(m.group(0)), " ".join(text.split()))
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}…{m.group(1)}", text)
    text = html.escape(text, quote=False)  # Gradio shows messages as HTML
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _file_name(path: str) -> str:
    """A server path in a message: a file keeps its name, a folder becomes 'a server folder'."""
    last = re.split(r"[\\/]", path.rstrip("\\/"))[-1]
    return last if "." in last.strip(".") else "a server folder"


def _refuse(what: str, exc: Exception, path: Path | None, name: str) -> gr.Error:
    """The page's error for ``exc``, logged: user errors in one line, anything else with its traceback."""
    if isinstance(exc, GFPError):
        options.in_words(exc, MESSAGE_WORDS)  # a refused option is named by its control
        log.warning("%s refused (%s): %s", what, name or "no photo", one_line(str(exc)))
        return gr.Error(visitor_message(exc, path, name), duration=TOAST_SECONDS, print_exception=False)
    log.error("%s of %s failed", what, name or "no photo", exc_info=exc)
    return gr.Error(f"{FAILED} ({type(exc).__name__})", duration=TOAST_SECONDS, print_exception=False)


def _number(name: str, value: Any) -> float:
    """``value`` as a number; ``name``: the setting's canonical name (the message names its control)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise options.in_words(InvalidOptionError(f"{{setting}} must be a number, got {short(value)}", setting=name,
                                                  value=value), LABELS) from None


def make_options(model: Any, fidelity: Any, visibility: Any, upscale: Any, detector: Any, threshold: Any,
                 faces: Any, indices: Any, mask: Any, background: Any, output_format: Any) -> RestoreOptions:
    """The page's (or an API caller's) values as checked options. Upscale keeps its fraction so that
    3.5 is refused rather than run as 3."""
    options = RestoreOptions(
        model=model, fidelity=_number("fidelity", fidelity), visibility=_number("visibility", visibility),
        upscale=_number("upscale", upscale), detector=detector, threshold=_number("threshold", threshold),
        faces=faces, indices="" if indices is None else indices, mask=mask, background=background,
        output_format=output_format)
    options.check()
    return options


def summary_text(outcome: RestoreOutcome, model: str) -> str:
    notes = outcome.notes + ([outcome.weights_note] if outcome.weights_note else [])
    lines = [f"**{outcome.summary}** with GFPGAN {model}."] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def weights_banner(notes: list[str]) -> dict:
    text = "\n\n".join(f"⚠️ {note}" for note in notes)
    return gr.update(value=text, visible=bool(notes))


# --- the page ---------------------------------------------------------------------------------------

def build_demo(engine: RestoreEngine, settings: WebSettings | None = None) -> gr.Blocks:
    settings = settings or WebSettings()
    use_engine(engine)
    run_restore = on_accelerator(restore_job)
    max_bytes = file_size_bytes(settings.max_file_size)

    def restore(image, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                background, output_format, progress=gr.Progress(track_tqdm=True)):
        """Restore the faces in a photo.

        Returns the (before, after) pair shown by the slider (at most 2048 px wide), each face's aligned
        crop before and after, the number of faces found, a summary (with a note when the weights are
        not the verified published ones), and the full-resolution result file in the chosen format."""
        path, name = None, ""
        with tempfile.TemporaryDirectory() as scratch:
            try:
                path, name = uploaded_path(image, cache_dir, Path(scratch), max_bytes)
                options = make_options(model, fidelity, visibility, upscale, detector, threshold, faces, indices,
                                       mask, background, output_format)
                outcome = run_restore(str(path), options)
            except Exception as exc:  # noqa: BLE001 (every failure becomes a short message; the log has it all)
                raise _refuse("restore", exc, path, name) from None
        return ((outcome.before, outcome.after), outcome.face_pairs,
                outcome.num_detected, summary_text(outcome, options.model),
                str(outcome.file))

    def show_banner() -> dict:
        """The weights notice: shown when the page opens, and again after each restore."""
        return weights_banner(engine.weights_notes())

    def after_restore() -> tuple[dict, dict]:
        """The face count appears with the first result (the API's answer stays a plain number)."""
        return gr.update(visible=True), show_banner()

    def number_faces(image, detector, threshold):
        """Find the faces in a photo and number them (the numbers that 'Faces by number' takes)."""
        path, name = None, ""
        with tempfile.TemporaryDirectory() as scratch:
            try:
                path, name = uploaded_path(image, cache_dir, Path(scratch), max_bytes)
                preview, count = engine.detect(path, detector, _number("threshold", threshold))
            except Exception as exc:  # noqa: BLE001
                raise _refuse("face numbering", exc, path, name) from None
        text = f"{count} face{'s' if count != 1 else ''} found, numbered in reading order from #0."
        return preview, text

    with gr.Blocks(title="GFPGAN face restoration", delete_cache=(1800, 3600)) as demo:
        cache_dir = Path(demo.GRADIO_CACHE)  # where Gradio stores uploads: the only files read
        gr.Markdown(INTRO)
        banner = gr.Markdown(visible=False, elem_id="weights-note")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(label="Photo", sources=["upload", "clipboard", "webcam"], type="filepath",
                                 height=320, elem_id="photo")
                model = gr.Radio(list(MODEL_CHOICES), value=DEFAULTS.model, label=LABELS["model"],
                                 info="v1.4: most detail; v1.3: most natural; v1.2: sharper; v1: the original "
                                      "(colourises grey photos)")
                with gr.Row():
                    upscale = gr.Slider(*_slider(options.WEB_UPSCALE), value=DEFAULTS.upscale, step=1,
                                        label=LABELS["upscale"], info="size of the result", min_width=140)
                    fidelity = gr.Slider(*_slider(options.FIDELITY), value=DEFAULTS.fidelity, step=0.05,
                                         label=LABELS["fidelity"],
                                         info="1: as published; lower: more of the face prior", min_width=140)
                # the button stays where it is when Advanced opens below it
                restore_button = gr.Button("Restore", variant="primary", elem_id="restore")
                with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                    with gr.Row():
                        visibility = gr.Slider(*_slider(options.VISIBILITY), value=DEFAULTS.visibility, step=0.05,
                                               label=LABELS["visibility"],
                                               info="restored face over the original (0: untouched)",
                                               min_width=140)
                        threshold = gr.Slider(*_slider(options.WEB_THRESHOLD), value=DEFAULTS.threshold, step=0.01,
                                              label=LABELS["threshold"], info="lower finds more faces",
                                              min_width=140)
                    faces = gr.Radio(FACE_LABELS, value=DEFAULTS.faces, label=LABELS["select"])
                    with gr.Row():
                        indices = gr.Textbox(value=DEFAULTS.indices, label=LABELS["indices"],
                                             placeholder="e.g. 0, 2", info="for 'Faces by number'", min_width=140)
                        detector = gr.Dropdown(list(options.DETECTORS.names), value=DEFAULTS.detector,
                                               label=LABELS["detector"], min_width=140)
                    mask = gr.Radio(MASK_LABELS, value=DEFAULTS.mask, label=LABELS["mask"])
                    background = gr.Radio(BACKGROUND_LABELS, value=DEFAULTS.background, label=LABELS["background"])
                    output_format = gr.Radio(list(FORMAT_SUFFIXES), value=DEFAULTS.output_format,
                                             label=LABELS["output_format"])
                    number_button = gr.Button("Number the faces", size="sm")
                    numbered_text = gr.Markdown()
                    numbered = gr.Image(label="Numbered faces", interactive=False, visible=False, height=240)
            with gr.Column(scale=2, min_width=320, elem_id="results"):
                slider = gr.ImageSlider(label="Before / after", type="numpy", elem_id="before-after",
                                        max_height=560)
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    count = gr.Number(label="Faces found", precision=0, interactive=False, visible=False,
                                      elem_id="face-count", min_width=120)
                    download = gr.File(label="Full-resolution result", interactive=False, elem_id="download",
                                       min_width=200)
                gallery = gr.Gallery(label="Each face: before | after", columns=3, height=300,
                                     elem_id="faces", object_fit="contain")
        with gr.Row(elem_id="examples"):
            gr.Examples(examples=[[str(p)] for p in EXAMPLES if p.exists()], inputs=[image],
                        label="Examples (public-domain NASA photo)")

        done = restore_button.click(
            restore, [image, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                      background, output_format],
            [slider, gallery, count, summary, download], api_name="restore", preprocess=False,
            concurrency_id="restore")
        done.success(after_restore, None, [count, banner], api_name=False, queue=False)
        done.success(None, None, None, js=SHOW_RESULT_JS)
        number_button.click(number_faces, [image, detector, threshold], [numbered, numbered_text],
                            api_name="number_faces", preprocess=False, concurrency_id="restore").success(
            lambda: gr.update(visible=True), None, numbered, api_name=False, queue=False)
        demo.load(show_banner, None, banner, api_name=False, queue=False)

    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    demo.restore_engine = engine  # launch() closes it when the server stops
    return demo


def create_app(argv: list[str] | None = None) -> tuple[gr.Blocks, WebSettings]:
    """The page and its settings (command line, else GFP_WEB_* variables), with the default models
    loaded (ZeroGPU wants models placed at start-up)."""
    settings = parse_settings(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from gfp_core.weights import add_model_dir

    for folder in settings.model_dirs:
        add_model_dir(folder)
    engine = RestoreEngine(device=settings.device, dtype=settings.dtype, max_pixels=settings.max_pixels,
                           max_output_pixels=settings.max_output_pixels, max_faces=settings.max_faces,
                           time_limit=settings.time_limit, allow_unverified=settings.allow_unverified,
                           keep_s=settings.keep_results)
    atexit.register(engine.close)
    log.info("results kept in %s for %g s", engine.output_dir, engine.keep_s)
    engine.preload()
    return build_demo(engine, settings), settings


def launch(demo: gr.Blocks, settings: WebSettings) -> None:
    """Serve until interrupted or terminated (SIGTERM, as Spaces and containers stop a server);
    then the results are removed."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # Gradio's server loop closes on KeyboardInterrupt
    try:
        demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
                    max_file_size=settings.max_file_size, show_error=True, footer_links=["api", "gradio"],
                    theme=gr.themes.Soft(), css=CSS)
    finally:
        engine = getattr(demo, "restore_engine", None)
        if engine is not None:
            engine.close()
            log.info("results removed; server stopped")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    launch(*create_app(argv))


if __name__ == "__main__":
    main()
