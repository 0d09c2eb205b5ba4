from __future__ import annotations

import numpy as np
import pytest

from models.errors import SourceError
from pipeline.camera.modality_front import open_file_source
from pipeline.config.settings import CameraCfg
from pipeline.ingest.sources import FileSource, LoopingSource


def test_looping_source_keeps_time_and_indices_increasing_across_passes(vtest_path):
    src = LoopingSource(lambda start: FileSource(vtest_path, start_time=start, max_frames=5), start_time=1000.0)
    frames = [src.read() for _ in range(12)]
    assert all(f is not None for f in frames)
    assert src.passes == 3 and src.status.state == "connected"
    assert [f.index for f in frames] == list(range(12))
    ts = np.array([f.ts for f in frames])
    assert ts[0] == 1000.0 and np.all(np.diff(ts) > 0)
    np.testing.assert_array_equal(frames[0].image, frames[5].image)  # pass 2 starts at the first frame again
    src.close()


def test_camera_with_loop_gets_a_looping_source(vtest_path):
    cam = CameraCfg(id="soak", source=str(vtest_path), loop=True)
    with open_file_source(cam, start_time=0.0, max_frames=3) as src:
        assert isinstance(src, LoopingSource)
        assert sum(src.read() is not None for _ in range(7)) == 7


def test_a_pass_that_cannot_open_raises_instead_of_spinning(vtest_path):
    opened = []

    def open_pass(start):
        if opened:
            raise SourceError("cannot decode vtest.avi")
        opened.append(start)
        return FileSource(vtest_path, start_time=start, max_frames=2)

    src = LoopingSource(open_pass)
    assert src.read() is not None and src.read() is not None
    with pytest.raises(SourceError, match="cannot decode"):
        src.read()
