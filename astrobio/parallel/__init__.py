"""Parallel plans applied from outside to the unchanged `UnifiedMultiModalSystem`.

    mesh.py             the (dp, tp) DeviceMesh of a torchrun job
    tensor_parallel.py  DTensor TP + sequence parallelism of the LLM, loss parallelism
    lora.py             LoRA adapters on the frozen LLM base (TP-aware)
    checkpointing.py    activation checkpointing of decoder layers (full, selective)
    fsdp.py             FSDP2 fully_shard of encoders, fusion and heads (and the LLM, dp > 1)
    parallelize.py      the whole plan in order; AdamW and gradient clipping over DTensors
    precision.py        the mixed-precision build: bf16 LLM, fp32 trained modules
    dcp.py              sharded checkpoints (torch.distributed.checkpoint), N ranks -> M
    load.py             each rank reads only its shards of a saved LLM
    qlora.py            QLoRA: the frozen base of the adapted projections in NF4 (torchao)

The layout that trains with these plans is `astrobio.train.distributed.MeshParallelism`; the
planner that measures them is `astrobio.plan`.
"""

from astrobio.parallel.mesh import init_mesh, is_distributed_launch
from astrobio.parallel.parallelize import adamw, clip_grad_norm_, freeze_llm_base, parallelize

__all__ = ["adamw", "clip_grad_norm_", "freeze_llm_base", "init_mesh", "is_distributed_launch",
           "parallelize"]
