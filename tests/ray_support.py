"""Ray clusters for the Ray tests: one per module, on this machine.

``local``: the cluster ``connect(num_cpus=2)`` starts, as the engines do without ``--ray-address``.
``two nodes``: a ``ray.cluster_utils.Cluster`` whose head (the driver's node) has no CPU, so every
task runs on the second node and every result crosses to the driver through Ray's object transfer.
"""

import pytest

CLUSTERS = ["local", "two nodes"]


@pytest.fixture(scope="module", params=CLUSTERS)
def cluster(request):
    """The running cluster's kind; skips with the reason when ray is not installed."""
    ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'pairclass[ray]'")
    from pairclass.engines.raydata import connect

    nodes = None
    if request.param == "local":
        connect(num_cpus=2)  # the cluster the engine starts without --ray-address
    else:
        from ray.cluster_utils import Cluster

        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        nodes.add_node(num_cpus=2)
        ray.init(address=nodes.address, log_to_driver=False)
        nodes.wait_for_nodes()
        connect()
    try:
        yield request.param
    finally:
        ray.shutdown()
        if nodes is not None:
            nodes.shutdown()


def alive_nodes():
    import ray

    return sum(1 for node in ray.nodes() if node["Alive"])
