"""Actor pools are sized from the stage's resources and the cluster, leaving room for I/O tasks."""

from __future__ import annotations

from jobs.pipeline import actor_pool_args
from jobs.stages.base import Resources, StageParams


def params(**resources):
    return StageParams(use="x", resources=Resources(**resources))


def test_two_cpus_no_gpu_leaves_a_cpu_for_reading_and_writing():
    for stages in (1, 2, 3):
        total = sum(a["concurrency"] * a["num_cpus"] for a in
                    [actor_pool_args(params(replicas=2), 2, 0, stages)] * stages)
        assert total <= 1.0
        assert actor_pool_args(params(num_gpus=1), 2, 0, stages)["num_gpus"] == 0  # CPU fallback


def test_gpus_pin_actors_and_cap_replicas_at_the_gpu_count():
    args = actor_pool_args(params(num_gpus=1, replicas=4), 16, 2, 1)
    assert args == {"concurrency": 2, "num_gpus": 1, "num_cpus": 1}
    half = actor_pool_args(params(num_gpus=0.5, replicas=4), 16, 2, 1)
    assert half["concurrency"] == 4 and half["num_gpus"] == 0.5


def test_big_cpu_machine_gives_each_replica_what_it_asks():
    args = actor_pool_args(params(num_cpus=2, replicas=3), 32, 0, 1)
    assert args == {"concurrency": 3, "num_gpus": 0, "num_cpus": 2}


def test_a_cluster_keeps_asking_for_gpus_its_autoscaler_will_add():
    args = actor_pool_args(params(num_gpus=1, replicas=2), 4, 0, 1, cpu_fallback=False)
    assert args["num_gpus"] == 1 and args["concurrency"] == 2


def test_cpu_model_actors_share_the_machines_cores_when_local():
    from jobs.pipeline import actor_threads

    one = actor_pool_args(params(), 2, 0, 1)
    assert one["num_cpus"] <= 1 and actor_threads([one], 2, local=True) == 2  # not the one Ray reserves
    two = actor_pool_args(params(replicas=2), 16, 0, 1)
    assert actor_threads([two], 16, local=True) == 8
    gpu = actor_pool_args(params(num_gpus=1), 16, 2, 1)
    assert actor_threads([gpu], 16, local=True) == 0  # GPU actors keep Ray's setting
    assert actor_threads([actor_pool_args(params(num_cpus=4), 32, 0, 1)], 32, local=False) == 4
