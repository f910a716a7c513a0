"""Where the staging sink's writes may run: on any node when every node sees the output, else on
the driver's node; an embedded Ray is that node alone, so after a task stage its writes fuse into
the task that made the block (no second task per block, no block through the object store)."""

from __future__ import annotations

from jobs.commit import OutputLocation
from jobs.pipeline import _make_sink
from jobs.segments import split
from jobs.stages.registry import stage_class


def sink(tmp_path, shared: bool, fuse_writes: bool):
    segment = split([stage_class("clean")])[-1]
    return _make_sink(OutputLocation.for_uri(str(tmp_path / "out")), ["text"], "zstd", shared, fuse_writes, segment, None)


def test_a_local_output_on_a_cluster_is_written_on_the_drivers_node_unless_shared(tmp_path):
    assert sink(tmp_path, shared=False, fuse_writes=False).supports_distributed_writes is False
    assert sink(tmp_path, shared=True, fuse_writes=False).supports_distributed_writes is True


def test_an_embedded_ray_after_a_task_stage_writes_where_the_block_was_made(tmp_path):
    assert sink(tmp_path, shared=False, fuse_writes=True).supports_distributed_writes is True
