"""50 real training batches (the tiny preset's data through its loader, the full model at
reduced widths, forward and backward with the triton backend) reach each autotuned kernel as a
handful of keys.

Text is padded to buckets in collate, graph nodes to buckets in the encoder, and every op keys
its autotuner on buckets (astrobio.ops.buckets), so the batches' varying text lengths and
graph sizes do not each re-tune. Kernel launches are replaced by recorders (the interpreter
would take minutes per batch at these sizes); everything around them runs for real, and the
outputs they would have written are left uninitialised, which the shapes do not care about.
"""

import pytest
import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from astrobio import ops
from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.kernels import conv3d, cross_attention, sddmm, spmm
from astrobio.models import UnifiedMultiModalSystem
from astrobio.ops.buckets import bucket

BATCHES = 50
BATCH_SIZE = 8
NARROW = [  # the tiny preset's shapes of data, a narrower model (CPU time)
    "model.d_model=16", "model.cnn_channels=4,8", "model.gnn_hidden=16", "model.gnn_latent=8",
    "model.spectral_channels=8", "model.param_hidden=16", "model.fusion_layers=1",
    "model.fusion_heads=2", "model.llm.hidden_size=32", "model.llm.num_layers=1",
    "model.llm.num_heads=2", "model.llm.num_kv_heads=2", "model.llm.intermediate_size=64",
]


class Recorder:
    """Stands in for a Triton kernel: `kernel[grid](...)` records the autotuning key (for an
    autotuner) and launches nothing."""

    def __init__(self, kernel):
        self.tuned = isinstance(kernel, triton.runtime.Autotuner)
        self.names = kernel.arg_names if self.tuned else []
        self.keys = kernel.keys if self.tuned else []
        self.best_config = kernel.configs[0] if self.tuned else None
        self.seen = []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            named = dict(zip(self.names, args)) | kwargs
            self.seen.append(tuple(named[k] for k in self.keys))
        return launch


KERNEL_TYPES = (triton.runtime.Autotuner, triton.runtime.JITFunction, InterpretedFunction)


@pytest.fixture
def recorders(monkeypatch):
    found = {}
    for module in (conv3d, cross_attention, spmm, sddmm):
        for name, kernel in list(vars(module).items()):
            if isinstance(kernel, KERNEL_TYPES):
                recorder = found[f"{module.__name__.rsplit('.', 1)[1]}.{name}"] = Recorder(kernel)
                monkeypatch.setattr(module, name, recorder)
    return found


def test_fifty_training_batches_give_a_handful_of_keys(recorders, tmp_path):
    config = load_config("tiny", overrides=[f"data.n_samples={BATCHES * BATCH_SIZE + 100}",
                                            "data.shard_size=128", *NARROW])
    root = ensure_default_dataset(config.data, tmp_path / "ds", progress=False)
    loader = make_loader(AstroBioDataset(root, "train"), BATCH_SIZE, shuffle=True, seed=0,
                         drop_last=True)
    torch.manual_seed(0)
    model = UnifiedMultiModalSystem(config).train()
    text_lengths, node_counts, batches = set(), set(), 0
    with ops.use_backend("triton"):
        while batches < BATCHES:
            for batch in loader:
                if batches == BATCHES:
                    break
                text_lengths.add(int(batch.attention_mask.sum(1).max()))
                node_counts.add(batch.graph.max_nodes)
                assert batch.input_ids.shape[1] == bucket(int(batch.attention_mask.sum(1).max()))
                assert batch.graph.spmm_schedule is not None
                out = model(batch)
                (out.habitable_logit.sum() + out.surface_temperature_z.sum()).backward()
                batches += 1
    tuned = {name: r for name, r in recorders.items() if r.tuned and r.seen}
    keys = {name: set(r.seen) for name, r in tuned.items()}
    report = {name: len(k) for name, k in keys.items()}
    # the data did vary: exact-length keys would have been many
    assert len(text_lengths) >= 8 and len(node_counts) >= 4, (text_lengths, node_counts)
    assert {"conv3d._conv3d_fwd_kernel", "conv3d._conv3d_bwd_weight_kernel",
            "cross_attention._fwd_small_tuned", "cross_attention._dkdv_small_tuned"} <= set(keys)
    # each conv layer keeps one key (batch size fixed); attention: a few buckets per call site
    layers = len(config.model.cnn_channels)
    assert report["conv3d._conv3d_fwd_kernel"] == layers, report
    for name in ("cross_attention._fwd_small_tuned", "cross_attention._dkdv_small_tuned"):
        assert report[name] <= 8, (report, sorted(keys[name]))
        assert report[name] < len(text_lengths) + len(node_counts), report
    print("distinct autotune keys over", BATCHES, "batches:", report,
          "text lengths seen:", len(text_lengths), "graph sizes seen:", len(node_counts))
