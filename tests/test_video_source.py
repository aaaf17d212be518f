"""Video input: files read to the end, corrupt frames skipped, broken inputs refused, streams retried."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.errors import FaceprintError, VideoError
from faceprint.video import VideoSource, parse_source


def write_video(path: Path, n: int = 20, fps: float = 10.0, size: tuple[int, int] = (96, 64)) -> Path:
    """Frames whose red channel encodes their index (BGR on disk), so reads can be checked."""
    codec = "MJPG" if path.suffix == ".avi" else "mp4v"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[..., 2] = 8 * i  # red in BGR
        w.write(frame)
    w.release()
    return path


def test_file_frames_are_rgb_with_video_times(tmp_path: Path) -> None:
    with VideoSource(write_video(tmp_path / "v.avi")) as src:
        assert not src.live and src.fps == 10.0 and src.size == (96, 64)
        frames = list(src)
    assert [f.index for f in frames] == list(range(20))
    assert [f.time for f in frames] == pytest.approx([i / 10 for i in range(20)])
    red = [float(f.image[..., 0].mean()) for f in frames]  # RGB now: red is channel 0
    assert red == pytest.approx([8 * i for i in range(20)], abs=3)
    assert all(f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8 for f in frames)


def test_corrupt_and_truncated_files_are_not_fatal(tmp_path: Path) -> None:
    good = write_video(tmp_path / "v.avi", n=30)
    data = bytearray(good.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes()
    (tmp_path / "bad.avi").write_bytes(data)
    (tmp_path / "cut.avi").write_bytes(good.read_bytes()[: len(data) * 2 // 3])
    src = VideoSource(tmp_path / "bad.avi")
    frames = list(src)  # damaged frames decode with wrong pixels or not at all: never an exception
    assert len(frames) >= 25 and src.skipped >= 1
    # a frame that failed to decode leaves a gap in the indexes, so later frames keep their true time
    assert [f.index for f in frames] == sorted({f.index for f in frames}) and frames[-1].index > len(frames) - 1
    assert all(f.time == pytest.approx(f.index / 10) for f in frames)
    cut = list(VideoSource(tmp_path / "cut.avi"))
    assert 10 < len(cut) < 30 and [f.index for f in cut] == list(range(len(cut)))


class FakeCapture:
    """A cv2.VideoCapture stand-in: ``script`` says, read by read, whether a frame decodes."""

    def __init__(self, script: list[bool], opened: bool = True, count: int | None = None) -> None:
        self.script, self.opened, self.count = list(script), opened, count if count is not None else len(script)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.script:
            return False, None
        ok = self.script.pop(0)
        return ok, np.zeros((4, 4, 3), np.uint8) if ok else None

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 5.0, cv2.CAP_PROP_FRAME_COUNT: float(self.count)}.get(prop, 0.0)

    def release(self) -> None:
        pass


def test_undecodable_frames_are_skipped_and_keep_their_time(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", n=2)  # a real file; reads come from the fake
    src = VideoSource(path, opener=lambda _: FakeCapture([True, False, False, True, True]))
    frames = list(src)
    assert [f.index for f in frames] == [0, 3, 4] and frames[1].time == pytest.approx(0.6)
    assert src.skipped == 2
    # more bad frames in a row than allowed: the file is taken as ended there
    src = VideoSource(path, max_bad_frames=1, opener=lambda _: FakeCapture([True, False, False, True]))
    assert [f.index for f in src] == [0]


@pytest.mark.parametrize("content", [b"", b"not a video at all", None])
def test_unreadable_inputs_raise_video_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match="x.mp4") as info:
        VideoSource(path)
    assert isinstance(info.value, FaceprintError) and isinstance(info.value, OSError)


def test_truncated_mp4_is_refused_with_advice(tmp_path: Path) -> None:
    data = write_video(tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    with pytest.raises(VideoError, match="re-encode"):
        VideoSource(tmp_path / "cut.mp4")


def test_parse_source() -> None:
    assert parse_source("0") == (0, True) and parse_source(2) == (2, True)
    assert parse_source("rtsp://cam.local/stream") == ("rtsp://cam.local/stream", True)
    with pytest.raises(VideoError, match="camera index"):
        parse_source("no/such/file.mp4")


def test_lost_stream_is_reopened_with_back_off() -> None:
    captures = [FakeCapture([True, True, False]), FakeCapture([], opened=False), FakeCapture([], opened=False),
                FakeCapture([True, True])]
    waits: list[float] = []
    clock = iter(float(i) for i in range(100))
    src = VideoSource(
        "rtsp://cam/1", opener=lambda _: captures.pop(0) if captures else FakeCapture([], opened=False),
        sleep=waits.append, clock=lambda: next(clock), retries=3, backoff=0.5, max_backoff=2.0,
    )
    frames = []
    with pytest.raises(VideoError, match="rtsp://cam/1 after 4 attempts"):
        for f in src:  # the second connection drops too and then the stream stays away
            frames.append(f)
    assert [f.index for f in frames] == [0, 1, 2, 3] and frames[0].time == 0.0 and frames[3].time > frames[2].time
    # back-off doubles (0.5, 1) until the stream is back, and starts again from 0.5 next time
    assert waits == [0.5, 1.0, 0.5, 1.0, 2.0] and src.reconnects == 1


def test_stream_that_stays_lost_raises_after_retries() -> None:
    waits: list[float] = []
    with pytest.raises(VideoError, match="after 5 attempts"):
        VideoSource(0, opener=lambda _: FakeCapture([], opened=False), sleep=waits.append, retries=4,
                    backoff=1.0, max_backoff=3.0)
    assert waits == [1.0, 2.0, 3.0, 3.0]
