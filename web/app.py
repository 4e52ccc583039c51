"""The Gradio page: controls → :class:`web.engine.RestoreEngine` → slider, face gallery, download.

``python -m web`` serves it; the Space's ``app.py`` calls :func:`main` too. The restore button is also
the API endpoint ``/restore`` (see the page's "Use via API" link, or :mod:`gradio_client`).
"""
from __future__ import annotations

import base64
import binascii
import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from gfp_core.errors import GFPError
from gfp_core.face.detection import DETECTOR_NAMES
from gfp_core.face.masks import MASK_MODES

from .accelerator import on_accelerator
from .engine import BACKGROUND_CHOICES, FORMAT_SUFFIXES, MODEL_CHOICES, RestoreEngine, RestoreOptions
from .settings import WebSettings, parse_settings

log = logging.getLogger("web")

#: each gallery picture is a face before and after, side by side: twice as wide as high
CSS = "#faces .thumbnail-item { aspect-ratio: 2 / 1 !important; }"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = [ASSETS / "astronaut_old.jpg", ASSETS / "astronaut.jpg"]
DEFAULTS = RestoreOptions()

INTRO = """# GFPGAN face restoration
Restore the faces in an old, blurry or low-resolution photo with
[GFPGAN](https://github.com/TencentARC/GFPGAN) (Wang et al., CVPR 2021).
Upload, paste or take a photo, then press **Restore**. Drag the slider over the result to compare."""

FACE_LABELS = [("All faces", "all"), ("The largest face", "largest"), ("The face nearest the centre", "center"),
               ("Faces by number", "indices")]
MASK_LABELS = [("Face parsing (follows hair and skin)", "parsing"), ("Ellipse around the landmarks", "ellipse"),
               ("Feathered square (the original GFPGAN)", "box")]
BACKGROUND_LABELS = [("Lanczos resize (fast)", "lanczos"), ("Real-ESRGAN x2plus", "realesrgan_x2plus"),
                     ("Real-ESRGAN general x4v3", "realesr_general_x4v3")]
assert sorted(v for _, v in MASK_LABELS) == sorted(MASK_MODES)
assert [v for _, v in BACKGROUND_LABELS] == list(BACKGROUND_CHOICES)


def uploaded_path(image: Any, scratch: Path) -> tuple[Path, str]:
    """The file behind a raw image payload (the page's upload, paste or webcam, or an API call), and
    the name the person knows it by. Pasted images may arrive as data URLs."""
    if image is None:
        raise gr.Error("Add a photo first: upload one, paste one, or take one with the webcam.")
    if isinstance(image, str):
        data = {"path": image}
    else:  # a FileData payload: a dict, or the model itself
        data = image if isinstance(image, dict) else image.model_dump()
    url, path = data.get("url") or "", data.get("path")
    if url.startswith("data:"):
        try:
            payload = base64.b64decode(url.split(",", 1)[1], validate=False)
        except (IndexError, binascii.Error):
            raise gr.Error("The pasted image could not be read; save it to a file and upload that.") from None
        path = scratch / "pasted.png"
        path.write_bytes(payload)
    if not path:
        raise gr.Error("The photo did not arrive; upload it again.")
    return Path(path), data.get("orig_name") or Path(path).name


def _user_message(exc: Exception, path: Path, name: str) -> str:
    return str(exc).replace(str(path), name)


def build_demo(engine: RestoreEngine, settings: WebSettings | None = None) -> gr.Blocks:
    settings = settings or WebSettings()
    run_restore = on_accelerator(engine.restore)

    def restore(image, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                background, output_format, progress=gr.Progress(track_tqdm=True)):
        """Restore the faces in a photo.

        Returns the (before, after) pair shown by the slider (at most 2048 px wide), each face's aligned
        crop before and after, the number of faces found, a summary, and the full-resolution result
        file in the chosen format."""
        with tempfile.TemporaryDirectory() as scratch:
            path, name = uploaded_path(image, Path(scratch))
            options = RestoreOptions(
                model=model, fidelity=float(fidelity), visibility=float(visibility), upscale=int(upscale),
                detector=detector, threshold=float(threshold), faces=faces, indices=indices or "", mask=mask,
                background=background, output_format=output_format)
            try:
                outcome = run_restore(path, options, lambda f, text: progress(f, desc=text))
            except GFPError as exc:
                raise gr.Error(_user_message(exc, path, name)) from None
            except Exception as exc:  # a bug, not a user error: log it, show a short message
                log.exception("restore of %s failed", name)
                raise gr.Error(f"The restore failed ({type(exc).__name__}: {_user_message(exc, path, name)}).") \
                    from None
        for note in outcome.notes:
            gr.Warning(note)
        if outcome.num_detected == 0:
            gr.Info("No face was found in this photo: it was only resized.")
        summary = f"**{outcome.summary}** with GFPGAN {model}."
        return (outcome.before, outcome.after), outcome.face_pairs, outcome.num_detected, summary, str(outcome.file)

    def number_faces(image, detector, threshold):
        """Find the faces in a photo and number them (the numbers that 'Faces by number' takes)."""
        with tempfile.TemporaryDirectory() as scratch:
            path, name = uploaded_path(image, Path(scratch))
            try:
                preview, count = engine.detect(path, detector, float(threshold))
            except GFPError as exc:
                raise gr.Error(_user_message(exc, path, name)) from None
        return preview, f"{count} face{'s' if count != 1 else ''} found, numbered in reading order from #0."

    with gr.Blocks(title="GFPGAN face restoration", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Photo", sources=["upload", "clipboard", "webcam"], type="filepath",
                                 height=360, elem_id="photo")
                model = gr.Radio(list(MODEL_CHOICES), value=DEFAULTS.model, label="GFPGAN version",
                                 info="v1.4: most detail; v1.3: most natural; v1.2: sharper; v1: the original "
                                      "(colourises grey photos)")
                upscale = gr.Slider(1, 4, value=DEFAULTS.upscale, step=1, label="Upscale",
                                    info="size of the result")
                fidelity = gr.Slider(0, 1, value=DEFAULTS.fidelity, step=0.05, label="Fidelity",
                                     info="1: GFPGAN as published, keeps the person's features; lower: "
                                          "more of the generative face prior")
                with gr.Accordion("Advanced", open=False):
                    visibility = gr.Slider(0, 1, value=DEFAULTS.visibility, step=0.05, label="Visibility",
                                           info="blend of the restored face over the original (0: untouched)")
                    faces = gr.Radio(FACE_LABELS, value=DEFAULTS.faces, label="Which faces")
                    indices = gr.Textbox(value=DEFAULTS.indices, label="Face numbers",
                                         placeholder="e.g. 0, 2 — see 'Number the faces'",
                                         info="for 'Faces by number'")
                    detector = gr.Dropdown(list(DETECTOR_NAMES), value=DEFAULTS.detector, label="Face detector")
                    threshold = gr.Slider(0.05, 0.99, value=DEFAULTS.threshold, step=0.01,
                                          label="Detection threshold", info="lower finds more (and worse) faces")
                    mask = gr.Radio(MASK_LABELS, value=DEFAULTS.mask, label="Blending mask")
                    background = gr.Radio(BACKGROUND_LABELS, value=DEFAULTS.background, label="Background")
                    output_format = gr.Radio(list(FORMAT_SUFFIXES), value=DEFAULTS.output_format,
                                             label="Download format")
                    number_button = gr.Button("Number the faces", size="sm")
                    numbered = gr.Image(label="Faces found", interactive=False, visible=True, height=240)
                    numbered_text = gr.Markdown(label="Faces found, numbered")
                restore_button = gr.Button("Restore", variant="primary", elem_id="restore")
                gr.Examples(examples=[[str(p)] for p in EXAMPLES if p.exists()], inputs=[image],
                            label="Examples (public-domain NASA photo)")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="numpy", elem_id="before-after",
                                        max_height=720)
                with gr.Row():
                    count = gr.Number(label="Faces found", precision=0, interactive=False, elem_id="face-count")
                    download = gr.File(label="Full-resolution result", interactive=False, elem_id="download")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                gallery = gr.Gallery(label="Each face: before | after", columns=1, height="auto",
                                     elem_id="faces", object_fit="contain")

        restore_button.click(
            restore, [image, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                      background, output_format],
            [slider, gallery, count, summary, download], api_name="restore", preprocess=False,
            concurrency_id="restore")
        number_button.click(number_faces, [image, detector, threshold], [numbered, numbered_text],
                            api_name="number_faces", preprocess=False, concurrency_id="restore")

    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo


def create_app(argv: list[str] | None = None) -> tuple[gr.Blocks, WebSettings]:
    """The page and its settings (command line, else GFP_WEB_* variables), models not loaded yet."""
    settings = parse_settings(argv)
    from gfp_core.weights import add_model_dir

    for folder in settings.model_dirs:
        add_model_dir(folder)
    engine = RestoreEngine(device=settings.device, dtype=settings.dtype, max_pixels=settings.max_pixels,
                           max_output_pixels=settings.max_output_pixels)
    return build_demo(engine, settings), settings


def launch(demo: gr.Blocks, settings: WebSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
                max_file_size=settings.max_file_size, show_error=True, footer_links=["api", "gradio"],
                theme=gr.themes.Soft(), css=CSS)


def main(argv: list[str] | None = None) -> None:
    launch(*create_app(argv))


if __name__ == "__main__":
    main()
