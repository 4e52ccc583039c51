"""The page: a Photo tab (controls → :class:`web.engine.RestoreEngine` → slider, face gallery, download)
and a Video tab (:mod:`web.video_tab`).

``python -m web`` serves it; the Space's ``app.py`` calls :func:`main` too. The restore buttons are also
the API endpoints ``/restore`` and ``/restore_video`` (see the page's "Use via API" link, or
:mod:`gradio_client`).
"""
from __future__ import annotations

import atexit
import logging
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from . import controls as c
from .accelerator import on_accelerator, restore_job, use_engine
from .controls import make_options
from .engine import FORMAT_SUFFIXES, LABELS, RestoreEngine, RestoreOptions
from .messages import refuse, summary_text
from .settings import WebSettings, file_size_bytes, parse_settings
from .uploads import uploaded_path
from .video_limits import VideoLimits
from .video_tab import video_tab

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
  #photo, #clip { order: -2; height: 260px !important; }
  #restore, #restore-video { order: -1; }
  .toast-wrap { top: auto !important; bottom: 8px !important; right: 8px !important; left: 8px !important;
                width: auto !important; max-width: none !important; }
}
"""
ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = [ASSETS / "astronaut_old.jpg", ASSETS / "astronaut.jpg"]
DEFAULTS = RestoreOptions()

INTRO = """# GFPGAN face restoration
Restore the faces in an old, blurry or low-resolution photo or a short video with
[GFPGAN](https://github.com/TencentARC/GFPGAN) (Wang et al., CVPR 2021): upload, paste or take a photo,
press **Restore**, then drag the slider over the result to compare; or restore a clip in the **Video** tab."""

#: on a phone the result is below the settings: bring it into view when it comes (and keep the browser's
#: scroll anchoring from pushing it off screen again as its pictures load and it grows)
SHOW_RESULT_JS = """() => { if (window.innerWidth <= 640) {
    document.scrollingElement.style.overflowAnchor = 'none';
    document.getElementById('before-after')?.scrollIntoView({block: 'start'}); } }"""
SHOW_VIDEO_JS = SHOW_RESULT_JS.replace("before-after", "video-result")


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
                raise refuse("restore", exc, path, name) from None
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
                preview, count = engine.detect(path, detector, c.number("threshold", threshold))
            except Exception as exc:  # noqa: BLE001
                raise refuse("face numbering", exc, path, name) from None
        text = f"{count} face{'s' if count != 1 else ''} found, numbered in reading order from #0."
        return preview, text

    with gr.Blocks(title="GFPGAN face restoration", delete_cache=(1800, 3600)) as demo:
        cache_dir = Path(demo.GRADIO_CACHE)  # where Gradio stores uploads: the only files read
        gr.Markdown(INTRO)
        banner = gr.Markdown(visible=False, elem_id="weights-note")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Photo", id="photo-tab", elem_id="photo-tab"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=320):
                        image = gr.Image(label="Photo", sources=["upload", "clipboard", "webcam"], type="filepath",
                                         height=320, elem_id="photo")
                        model = c.model_control(DEFAULTS.model)
                        with gr.Row():
                            upscale = c.upscale_control(DEFAULTS.upscale)
                            fidelity = c.fidelity_control(DEFAULTS.fidelity)
                        # the button stays where it is when Advanced opens below it
                        restore_button = gr.Button("Restore", variant="primary", elem_id="restore")
                        with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                            with gr.Row():
                                visibility = c.visibility_control(DEFAULTS.visibility)
                                threshold = c.threshold_control(DEFAULTS.threshold)
                            faces = c.faces_control(DEFAULTS.faces)
                            with gr.Row():
                                indices = c.indices_control(DEFAULTS.indices)
                                detector = c.detector_control(DEFAULTS.detector)
                            mask = c.mask_control(DEFAULTS.mask)
                            background = c.background_control(DEFAULTS.background)
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
            with gr.Tab("Video", id="video-tab", elem_id="video-tab"):
                video_done = video_tab(engine, cache_dir)

        done = restore_button.click(
            restore, [image, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                      background, output_format],
            [slider, gallery, count, summary, download], api_name="restore", preprocess=False,
            concurrency_id="restore")
        done.success(after_restore, None, [count, banner], api_name=False, queue=False)
        done.success(None, None, None, js=SHOW_RESULT_JS)
        video_done.success(show_banner, None, banner, api_name=False, queue=False)
        video_done.success(None, None, None, js=SHOW_VIDEO_JS)
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
    video_limits = VideoLimits(seconds=settings.max_video_seconds, frames=settings.max_video_frames,
                               pixels=settings.max_video_pixels, file_bytes=file_size_bytes(settings.max_file_size))
    engine = RestoreEngine(device=settings.device, dtype=settings.dtype, backend=settings.backend,
                           max_pixels=settings.max_pixels, max_output_pixels=settings.max_output_pixels,
                           max_faces=settings.max_faces, time_limit=settings.time_limit,
                           allow_unverified=settings.allow_unverified,
                           keep_s=settings.keep_results, video_limits=video_limits)
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
