"""``restore --ray``: the local command's restore as a resumable Ray Data pipeline (gfp_core.scale), on a real
local Ray instance: the same files as the plain command, a manifest with every input's outcome, re-runs that
skip what is done, bounded retries, and runs that survive a killed worker or a killed driver."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from helpers import unavailable

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local Ray instance for the module (two CPUs, a small object store, no dashboard); the
    runs in this process use it, subprocesses join it by its address. Stopped at the end."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        unavailable('Ray is not installed: pip install "ray[data]" (requirements-test.txt)')
    os.environ["HF_HUB_OFFLINE"] = "1"  # the workers inherit the environment Ray starts with
    ray.init(address="local", num_cpus=2, object_store_memory=300 << 20, include_dashboard=False,
             log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(autouse=True)
def root_logging():
    """main() sets up logging on the stderr of the moment (pytest's capture, closed after the test): undone, so
    that later log lines (Ray's, from its threads) do not go to a closed file."""
    import logging

    handlers = logging.root.handlers[:]
    yield
    logging.root.handlers[:] = handlers


def env(tmp_path: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": "",
            "HF_HUB_CACHE": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}


def restore(*args: str) -> int:
    from gfp_core.cli import main

    return main(["restore", *args])


def photos(folder: Path, n: int, size: int = 256) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    img = data.astronaut()
    step = 512 // size
    out = []
    for i in range(n):
        path = folder / f"p{i:03d}.jpg"
        Image.fromarray(np.roll(img, 3 * i, axis=1)[::step, ::step]).save(path, quality=90)
        out.append(path)
    return out


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".gfp-scale" not in p.parts}


def manifest(out: Path):
    from gfp_core.scale import read_manifest

    return read_manifest(out / ".gfp-scale")


def partials(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if "partial" in p.name]


def poll(condition, deadline_s: float, what: str):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "in"
    photos(folder, 5)
    Image.fromarray(data.coins()[::2, ::2]).save(folder / "coins.png")  # no face
    Image.fromarray(data.astronaut()[::2, ::2]).convert("L").save(folder / "grey.png")
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    return folder


COMMON = ("--detector", "embedded", "-q")


def test_ray_writes_what_the_plain_command_writes_and_a_rerun_skips_it(ray_cluster, mixed_folder, tmp_path,
                                                                       tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plain, scaled = tmp_path / "plain", tmp_path / "ray"
    model = ("-m", str(tiny_checkpoint))
    assert restore(str(mixed_folder), *model, *COMMON, "-o", str(plain)) == 1
    assert restore(str(mixed_folder), *model, *COMMON, "-o", str(scaled), "--ray", "--ray-batch", "2") == 1
    err = capsys.readouterr().err
    assert "6 restored (6 faces), 1 without a face, 0 done by an earlier run" in err and "1 failed" in err
    assert any("corrupt.jpg" in line and "not a readable image" in line for line in err.splitlines())

    assert files(scaled) == files(plain)  # byte for byte: the same code wrote them
    assert len(files(plain)) == 7 + 6 * 3  # 7 photos, 3 files per face

    m = manifest(scaled)
    assert m.counts() == {"restored": 6, "no face": 1, "failed": 1}
    by_input = {Path(r["input"]).name: r for r in m.outcomes.values()}
    assert by_input["coins.png"]["status"] == "no face"
    failed = by_input["corrupt.jpg"]
    assert failed["attempts"] == 3 and "not a readable image" in failed["reason"]  # 1 try + 2 retries
    assert list((scaled / ".gfp-scale").glob("journal-*")) == []  # compacted into manifest.jsonl
    summary = json.loads((scaled / ".gfp-scale" / "last-run.json").read_text())
    assert summary["workers"] >= 1 and summary["worker_peak_mb"]

    # the same command again: what is done is skipped (files untouched), the failed input is tried again
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in scaled.rglob("*") if p.is_file()
              and ".gfp-scale" not in p.parts}
    assert restore(str(mixed_folder), *model, *COMMON, "-o", str(scaled), "--ray", "--retries", "0") == 1
    err = capsys.readouterr().err
    assert "0 restored (0 faces), 0 without a face, 7 done by an earlier run" in err and "1 failed" in err
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in before} == before
    assert len(files(scaled)) == len(before)
    m = manifest(scaled)
    assert m.counts() == {"restored": 6, "no face": 1, "failed": 1}
    assert next(r for r in m.outcomes.values() if r["status"] == "failed")["attempts"] == 1


def test_urls_input_lists_and_existing_outputs(ray_cluster, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """An fsspec URL (file://, as s3:// would be read) and an input list; an output that existed before the
    run is skipped as the plain command skips it, and recorded so."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "in"
    a, b, c = photos(folder, 3)
    (tmp_path / "bad.jpg").write_bytes(b"not a photo")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# one input a line\n{c}\n\nfile://{tmp_path}/bad.jpg\n")
    out = tmp_path / "out"
    (out / "restored_imgs").mkdir(parents=True)
    (out / "restored_imgs" / "p001.jpg").write_bytes(b"made earlier")
    code = restore(f"file://{folder}/p00[01].jpg", "-m", str(tiny_checkpoint), *COMMON, "-o", str(out),
                   "--input-list", str(listing), "--ray", "--retries", "0")
    err = capsys.readouterr().err
    assert code == 1, err
    assert "2 restored (2 faces), 0 without a face, 0 done by an earlier run, 1 skipped" in err
    # the message names the URL, not the worker's temporary copy
    assert f"error: file://{tmp_path}/bad.jpg: not a readable image" in err and "gfp-scale-" not in err
    assert (out / "restored_imgs" / "p001.jpg").read_bytes() == b"made earlier"
    m = manifest(out)
    assert m.counts() == {"restored": 2, "skipped": 1, "failed": 1}
    assert {r["input"] for r in m.outcomes.values()} == {f"file://{a}", f"file://{b}", str(c),
                                                          f"file://{tmp_path}/bad.jpg"}


def test_without_ray_the_flag_says_what_to_install(tmp_path, tiny_checkpoint):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import gfp_core, gfp_core.scale\n"
            "from gfp_core.cli import main\n"
            f"sys.exit(main(['restore', {str(tmp_path)!r}, '-m', {str(tiny_checkpoint)!r}, '--ray']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(tmp_path),
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: restoring with --ray needs Ray Data, which is not installed: pip install "ray[data]"']


def test_bad_options_and_missing_weights_are_refused_before_ray_starts(tmp_path, tiny_checkpoint, isolated, capsys):
    pytest.importorskip("ray")
    import ray

    before = ray.is_initialized()  # (the module's instance, when an earlier test started it)
    folder = tmp_path / "in"
    photos(folder, 1)
    out = str(tmp_path / "out")
    assert restore(str(folder), "-m", str(tiny_checkpoint), "-o", out, "--ray", "--upscale", "99") == 2
    assert "error: --upscale must be between 1 and 8, got 99" in capsys.readouterr().err
    assert restore(str(folder), "-m", "v1.4", "-o", out, "--ray") == 3  # offline, no weights: as locally
    assert "GFPGANv1.4 weights (GFPGANv1.4.pth) are not on this machine" in capsys.readouterr().err
    assert restore(str(folder), "-m", str(tiny_checkpoint), "-o", out, "--ray=nowhere") == 2
    assert "--ray nowhere: not a Ray address" in capsys.readouterr().err
    assert ray.is_initialized() == before  # none of them started Ray


def test_manifest_reads_torn_lines_and_keeps_the_latest_outcome(tmp_path):
    from gfp_core.scale.manifest import Journal, compact, read_manifest

    folder = tmp_path / ".gfp-scale"
    one, two = Journal(folder), Journal(folder)
    one.write([{"id": "a", "status": "started"}, {"id": "a", "status": "failed", "reason": "x"}])
    two.write([{"id": "a", "status": "restored", "faces": 1}, {"id": "b", "status": "started"}])
    one.write([{"id": "a", "status": "restored", "recovered": True}])  # files found complete: keeps faces
    with open(two.path, "a") as f:
        f.write('{"id": "c", "status": "rest')  # a writer killed mid-line
    one.close(), two.close()
    m = read_manifest(folder)
    assert m.outcomes["a"]["faces"] == 1 and "c" not in m.outcomes and m.starts == {"b": 1}
    compact(folder)
    assert [p.name for p in folder.iterdir()] == ["manifest.jsonl"]
    again = read_manifest(folder)
    assert again.outcomes["a"]["faces"] == 1 and again.starts == {"b": 1}


def test_inputs_cut_short_are_recovered_and_inputs_that_kill_workers_are_left_out(tmp_path, tiny_checkpoint,
                                                                                 monkeypatch, capsys):
    """A killed process's journal: one input was begun and its files are all there (the photo is written
    last), another was begun by three workers that all died. Neither goes to a worker again (so this run
    needs no Ray instance), and both outcomes are recorded."""
    pytest.importorskip("ray")
    from gfp_core.scale.inputs import ScaleInput
    from gfp_core.scale.manifest import Journal

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    finished, poison = photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    (out / "restored_imgs").mkdir(parents=True)
    (out / "restored_imgs" / finished.name).write_bytes(b"finished")
    ids = [ScaleInput(str(p), os.path.realpath(p)).id for p in (finished, poison)]
    journal = Journal(out / ".gfp-scale")
    journal.write([{"id": ids[0], "status": "started"}] + [{"id": ids[1], "status": "started"}] * 3)
    journal.close()
    code = restore(str(tmp_path / "in"), "-m", str(tiny_checkpoint), *COMMON, "-o", str(out), "--ray", "--retries", "2")
    err = capsys.readouterr().err
    assert code == 1 and "1 done by an earlier run" in err and "1 failed" in err
    assert f"{poison}: its worker died each of the 3 times" in err
    m = manifest(out)
    assert m.outcomes[ids[0]]["status"] == "restored" and m.outcomes[ids[0]]["recovered"]
    assert m.outcomes[ids[1]]["status"] == "worker died" and not m.starts
    assert (out / "restored_imgs" / finished.name).read_bytes() == b"finished"
    # and again: it stays out (listed), nothing is done
    code = restore(str(tmp_path / "in"), "-m", str(tiny_checkpoint), *COMMON, "-o", str(out), "--ray")
    err = capsys.readouterr().err
    assert code == 1 and "2 done by an earlier run" not in err and "1 done by an earlier run" in err
    assert "1 failed" in err and f"{poison}: its worker died each of the 3 times" in err
    assert manifest(out).counts() == {"restored": 1, "worker died": 1}


def inodes(out: Path) -> dict[str, tuple[int, int]]:
    """The restored photos there now: name → (inode, modification time)."""
    found = {}
    for path in (out / "restored_imgs").glob("*.jpg"):
        try:
            if not path.name.startswith("."):  # (pathlib's glob also lists a write in progress)
                found[path.name] = (path.stat().st_ino, path.stat().st_mtime_ns)
        except FileNotFoundError:
            pass
    return found


def check_complete(out: Path, inputs: list[Path]) -> None:
    """Every input has exactly one restored photo (and its face files), no temporary file is left, and the
    manifest says each is restored."""
    restored = sorted(p.name for p in (out / "restored_imgs").iterdir())
    assert restored == sorted(p.name for p in inputs)
    for name in ("restored_faces", "cropped_faces", "cmp"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(f"{p.stem}_00.png" for p in inputs)
    assert partials(out) == []
    m = manifest(out)
    assert m.counts() == {"restored": len(inputs)} and not m.starts
    for path in (out / "restored_imgs").iterdir():
        Image.open(path).load()  # whole, not cut short


@pytest.mark.heavy
def test_a_killed_worker_loses_nothing(ray_cluster, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from gfp_core.scale import restore_at_scale

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    inputs = photos(tmp_path / "in", 40, size=512)
    out = tmp_path / "out"
    options = dict(model=str(tiny_checkpoint), detector="embedded", quiet=True, ray_batch=1, workers=2)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = restore_at_scale([str(tmp_path / "in")], out, **options)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()

    def busy_worker() -> int | None:
        if len(inodes(out)) < 3:  # (none while the folder is not there yet)
            return None
        for journal in (out / ".gfp-scale").glob("journal-*.jsonl"):
            pid = int(journal.stem.split("-")[-2])
            if pid != os.getpid():
                return pid
        return None

    pid = poll(busy_worker, 120, "a worker's first outputs")
    os.kill(pid, signal.SIGKILL)
    kept = inodes(out)
    killed_at = len(kept)
    thread.join(300)
    assert not thread.is_alive()
    assert killed_at < len(inputs), "the run ended before the worker was killed"
    if "error" in outcome:  # Ray gave up on the run: the re-run below must finish it
        print(f"run ended with {outcome['error']!r}")
    else:  # Ray retried the killed worker's batch on a new worker: the run finished by itself
        assert outcome["summary"].counts.get("failed", 0) == 0
    summary = restore_at_scale([str(tmp_path / "in")], out, **options)
    assert summary.done_before + summary.counts.get("restored", 0) == len(inputs)
    check_complete(out, inputs)
    assert {p: inodes(out)[p] for p in kept} == kept  # finished photos are never written again
    print(f"worker killed with {killed_at}/{len(inputs)} photos written; the run "
          f"{'failed: ' + repr(outcome['error']) if 'error' in outcome else 'finished by itself'}; re-run: "
          f"{summary.done_before} done earlier, {summary.counts.get('restored', 0)} restored")


@pytest.mark.heavy
def test_a_killed_driver_loses_nothing(ray_cluster, tmp_path, tiny_checkpoint):
    inputs = photos(tmp_path / "in", 40, size=512)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "gfp_core", "restore", str(tmp_path / "in"), "-m", str(tiny_checkpoint),
               *COMMON, "-o", str(out), f"--ray={ray_cluster}", "--ray-batch", "1", "--workers", "2"]
    driver = subprocess.Popen(command, env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        poll(lambda: driver.poll() is not None or len(inodes(out)) >= 3, 180, "the first outputs")
        assert driver.poll() is None, driver.stderr.read().decode()
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.stderr.close()
    kept = inodes(out)
    first = len(kept)
    assert first < len(inputs), "the run ended before the driver was killed"

    again = subprocess.run(command, env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "done by an earlier run" in again.stderr
    check_complete(out, inputs)
    assert {p: inodes(out)[p] for p in kept} == kept
    recovered = sum(1 for r in manifest(out).outcomes.values() if r.get("recovered"))
    print(f"driver killed with {first}/{len(inputs)} photos written; re-run: {again.stderr.strip().splitlines()[-1]} "
          f"({recovered} recognised as finished by a worker that could not record them)")


@pytest.mark.heavy
def test_a_video_goes_through_the_same_way(ray_cluster, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """A clip beside a photo: restored by a worker with the local command's video code, frame for frame the same."""
    import av
    from clip_files import write_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "in"
    photos(folder, 1)
    img = data.astronaut()[::2, ::2]
    write_clip(folder / "clip.mp4", [np.roll(img, 2 * i, axis=1) for i in range(10)], fps=10)
    plain, scaled = tmp_path / "plain", tmp_path / "ray"
    model = ("-m", str(tiny_checkpoint))
    assert restore(str(folder), *model, *COMMON, "-o", str(plain)) == 0
    assert restore(str(folder), *model, *COMMON, "-o", str(scaled), "--ray") == 0, capsys.readouterr().err

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as box:
            return [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]

    a, b = frames(plain / "restored_videos" / "clip.mp4"), frames(scaled / "restored_videos" / "clip.mp4")
    assert len(a) == len(b) == 10 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert manifest(scaled).counts() == {"restored": 2}
    assert not list((scaled / "restored_videos").glob(".*"))  # the resume folder is gone
