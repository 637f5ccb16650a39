"""Encoders, the multimodal LLM, fusion, heads and `UnifiedMultiModalSystem`."""

from astrobio.models.datacube_cnn import DatacubeCNN
from astrobio.models.features import ModalityFeatures
from astrobio.models.fusion import FusionOutput, HeadOutputs, ModalityFusion, PredictionHeads
from astrobio.models.graph_vae import GraphVAE, GraphVAEOutput
from astrobio.models.llm import LLMOutput, MultiModalLLM, build_llama
from astrobio.models.param_encoder import ParamEncoder
from astrobio.models.spectral_encoder import SpectralEncoder
from astrobio.models.system import SystemOutput, UnifiedMultiModalSystem

__all__ = [
    "DatacubeCNN", "FusionOutput", "GraphVAE", "GraphVAEOutput", "HeadOutputs",
    "LLMOutput", "ModalityFeatures", "ModalityFusion", "MultiModalLLM", "ParamEncoder",
    "PredictionHeads", "SpectralEncoder", "SystemOutput", "UnifiedMultiModalSystem",
    "build_llama",
]
