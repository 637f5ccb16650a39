"""pytest-benchmark statistics of the CPU-side benches (graph collate and CSR, input pipeline,
loaders, one training step): `pytest bench/test_pipeline.py --benchmark-only`.

The bench modules themselves import no pytest, so they run as plain scripts on any machine.
Every case here builds synthetic planets, whose metabolic networks come from cobra's bundled
E. coli model: without cobra (a GPU image has none) the module is skipped.
"""

import pytest

pytest.importorskip("cobra", reason="the synthetic planets' metabolic networks need cobra")

import bench_collate  # noqa: E402
import bench_graph  # noqa: E402
import bench_loaders  # noqa: E402
import bench_system_step  # noqa: E402

from astrobio.data.build import build_dataset  # noqa: E402
from astrobio.data.dali import DALILoader, dali_available  # noqa: E402
from astrobio.data.loader import make_loader  # noqa: E402
from astrobio.data.reader import AstroBioDataset  # noqa: E402


@pytest.fixture(scope="module")
def graph_cases():
    return {name: case for name, *case in bench_graph._cases()}


@pytest.mark.parametrize("side", ["ours", "peer"])
@pytest.mark.parametrize("name", ["collate vs PyG Batch.from_data_list",
                                  "collate vs pure-torch path", "CSR build (CPU) vs torch.sort"])
def test_graph_ops(benchmark, graph_cases, name, side):
    _, ours, peer, _, _ = graph_cases[name]
    benchmark(ours if side == "ours" else peer)


@pytest.fixture(scope="module")
def pipeline_cases(tmp_path_factory):
    return bench_collate._cases(bench_collate._build(tmp_path_factory.mktemp("bench")))


@pytest.mark.parametrize("name", ["collate (batch 32)", "getitem, checked",
                                  "getitem, unchecked", "loader epoch, 0 workers"])
def test_input_pipeline(benchmark, pipeline_cases, name):
    fn, units, unit = pipeline_cases[name]
    benchmark.extra_info.update(units_per_call=units, unit=unit)
    benchmark(fn)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    config = bench_loaders._config("tiny", 128)
    root = build_dataset(config.data, tmp_path_factory.mktemp("bench") / "ds", progress=False)
    return config, AstroBioDataset(root, "train")


@pytest.mark.parametrize("loader_name", ["torch", "dali"])
def test_loader_epoch(benchmark, tiny, loader_name):
    config, dataset = tiny
    if loader_name == "dali":
        if not dali_available():
            pytest.skip("NVIDIA DALI is not installed")
        loader = DALILoader(dataset, config.train.batch_size, seed=1)
    else:
        loader = make_loader(dataset, config.train.batch_size, seed=1)
    benchmark.extra_info.update(samples_per_call=len(dataset), unit="epochs")
    benchmark(lambda: sum(batch.batch_size for batch in loader))


def test_training_step(benchmark, tiny):
    config, dataset = tiny
    batch = next(iter(make_loader(dataset, config.train.batch_size, shuffle=False)))
    benchmark.extra_info.update(batch_size=batch.batch_size)
    step = bench_loaders.training_step(config, batch)
    step()
    benchmark(step)


@pytest.fixture(scope="module")
def system_step(tmp_path_factory):
    return bench_system_step._step_fn(bench_system_step._build(tmp_path_factory.mktemp("bench")))[0]


def test_system_train_step(benchmark, system_step):
    system_step()
    benchmark(system_step)
