"""`UnifiedMultiModalSystem`: five encoders, the multimodal LLM, fusion and heads as one model.

Data flow for a `MultiModalBatch` (every arrow a real tensor; nothing random except the graph
VAE's reparameterisation noise and negative-edge sampling in training mode):

    climate  -> DatacubeCNN     -+-> numerical_data -+
    params   -> ParamEncoder    -+                   +-> MultiModalLLM(text) -> text features
    spectrum -> SpectralEncoder ---> spectral_data --+
    graph    -> GraphVAE (reconstruction, KL)
    all five ModalityFeatures + present -> ModalityFusion -> PredictionHeads

Each encoder's features are zeroed where its modality is absent (`present` False) before they
go anywhere, and the fusion key mask excludes them, so an absent modality's input values never
reach the outputs. The text attention mask is zeroed for samples without text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from astrobio.config import Config, DataConfig, ModelConfig
from astrobio.errors import ConfigError
from astrobio.models.datacube_cnn import DatacubeCNN
from astrobio.models.features import ModalityFeatures, masked_mean
from astrobio.models.fusion import ModalityFusion, PredictionHeads
from astrobio.models.graph_vae import GraphVAE
from astrobio.models.llm import LLMOutput, MultiModalLLM
from astrobio.models.param_encoder import ParamEncoder
from astrobio.models.spectral_encoder import SpectralEncoder
from astrobio.ops.buckets import bucket
from astrobio.schema import MODALITIES


@dataclass
class SystemOutput:
    habitable_logit: torch.Tensor  # [B]
    habitability_class_logits: torch.Tensor  # [B, 5]
    surface_temperature: torch.Tensor  # [B], kelvin
    surface_temperature_z: torch.Tensor  # [B], normalisation.normalise_temperature space
    biosignature_logit: torch.Tensor  # [B]
    lm_loss: torch.Tensor  # scalar
    lm: LLMOutput  # logits [B, S, V], hidden states, extended mask and labels
    vae_reconstruction: torch.Tensor  # scalar
    vae_kl: torch.Tensor  # scalar
    features: dict[str, ModalityFeatures]  # what fusion received, by modality
    gates: torch.Tensor  # [M], in MODALITIES order
    fused: torch.Tensor  # [B, d_model]
    present: torch.Tensor  # [B, M] bool


class UnifiedMultiModalSystem(nn.Module):
    def __init__(self, config: Config | ModelConfig, data: DataConfig | None = None,
                 load_llm_weights: bool = True):
        """`load_llm_weights=False` leaves a saved LLM (`model.llm.path`) on the meta device,
        for `astrobio.parallel.load` to fill shard by shard."""
        super().__init__()
        if isinstance(config, Config):
            model, data = config.model, config.data
        else:
            model = config
            data = data if data is not None else DataConfig()
        d = model.d_model
        self.llm = MultiModalLLM(model.llm, numerical_dim=2 * d, spectral_dim=d,
                                 numerical_tokens=model.numerical_prefix_tokens,
                                 spectral_tokens=model.spectral_prefix_tokens,
                                 load_weights=load_llm_weights)
        _check_text_fits(data, model, self.llm.lm.config)
        self.climate_encoder = DatacubeCNN(data.climate_shape, model.cnn_channels, d)
        self.graph_encoder = GraphVAE(model.gnn_hidden, model.gnn_layers, model.gnn_latent, d,
                                      n_heads=model.fusion_heads)
        self.spectrum_encoder = SpectralEncoder(data.spectrum_bins, model.spectral_channels, d)
        self.param_encoder = ParamEncoder(model.param_hidden, d)
        self.text_token_proj = nn.Linear(self.llm.hidden_size, d)
        self.text_pooled_proj = nn.Linear(self.llm.hidden_size, d)
        self.fusion = ModalityFusion(d, model.fusion_layers, model.fusion_heads, model.dropout)
        self.heads = PredictionHeads(d, model.dropout)

    def modality_modules(self) -> dict[str, nn.Module]:
        """The encoder of each modality, in `schema.MODALITIES` order."""
        return {
            "climate": self.climate_encoder,
            "graph": self.graph_encoder,
            "spectrum": self.spectrum_encoder,
            "params": self.param_encoder,
            "text": self.llm,
        }

    def forward(self, batch) -> SystemOutput:
        present = batch.present.bool()
        here = {name: present[:, i] for i, name in enumerate(MODALITIES)}
        climate = self.climate_encoder(batch.climate).masked_by(here["climate"])
        vae = self.graph_encoder(batch.graph, here["graph"])
        graph = vae.features.masked_by(here["graph"])
        spectrum = self.spectrum_encoder(batch.spectrum, batch.spectrum_err,
                                         batch.spectrum_mask.bool()).masked_by(here["spectrum"])
        params = self.param_encoder(batch.params).masked_by(here["params"])

        text_mask = batch.attention_mask * here["text"].long()[:, None]
        lm = self.llm(
            batch.input_ids, attention_mask=text_mask, labels=batch.input_ids,
            numerical_data=torch.cat([climate.pooled, params.pooled], dim=-1),
            spectral_data=spectrum.pooled,
            numerical_present=here["climate"] | here["params"],
            spectral_present=here["spectrum"],
        )
        text_hidden = lm.text_hidden_states
        text_valid = text_mask.bool()
        text = ModalityFeatures(
            pooled=self.text_pooled_proj(masked_mean(text_hidden, text_valid, dim=1)),
            tokens=self.text_token_proj(text_hidden),
            mask=text_valid,
        ).masked_by(here["text"])

        features = {"climate": climate, "graph": graph, "spectrum": spectrum, "params": params,
                    "text": text}
        fusion = self.fusion(features, present)
        heads = self.heads(fusion.fused)
        return SystemOutput(
            habitable_logit=heads.habitable_logit,
            habitability_class_logits=heads.habitability_class_logits,
            surface_temperature=heads.surface_temperature,
            surface_temperature_z=heads.surface_temperature_z,
            biosignature_logit=heads.biosignature_logit,
            lm_loss=lm.loss,
            lm=lm,
            vae_reconstruction=vae.reconstruction,
            vae_kl=vae.kl,
            features=features,
            gates=fusion.gates,
            fused=fusion.fused,
            present=present,
        )


def _check_text_fits(data: DataConfig, model: ModelConfig, llama_config) -> None:
    """The tokenizer's ids and the longest text plus prefix must fit the LM (preset or loaded);
    collate pads text to the bucket of the longest (astrobio.ops.buckets), so that bucket must
    fit too (every preset's max_text_tokens is itself a bucket)."""
    source = "model.llm" if model.llm.path is None else f"the LM at {model.llm.path!r}"
    if data.vocab_size > llama_config.vocab_size:
        raise ConfigError(f"data.vocab_size {data.vocab_size} exceeds the vocabulary of {source} "
                          f"({llama_config.vocab_size})")
    prefix = model.prefix_tokens
    padded = bucket(data.max_text_tokens)
    if padded + prefix > llama_config.max_position_embeddings:
        raise ConfigError(
            f"data.max_text_tokens {data.max_text_tokens} (padded to {padded}) + {prefix} prefix "
            f"tokens exceed the max_position_embeddings of {source} "
            f"({llama_config.max_position_embeddings})")
