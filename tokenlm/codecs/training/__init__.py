"""Codec training: an EnCodec-architecture codec learnt from scratch, exported as a transformers EnCodec folder."""

from tokenlm.codecs.training.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss, ReconstructionLoss, si_snr
from tokenlm.codecs.training.model import CodecTrainee, CodecTrainingConfig, codec_config

__all__ = [
    "CodecTrainee", "CodecTrainingConfig", "MultiResolutionSTFTLoss", "MultiScaleMelLoss", "ReconstructionLoss",
    "codec_config", "si_snr",
]
