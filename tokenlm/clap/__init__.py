"""Contrastive text-audio pre-training (CLAP) on tokenlm's trainer, saved in transformers' ``ClapModel`` format."""

from tokenlm.clap.model import ClapTrainee, ClapTrainingConfig
from tokenlm.clap.tokenizer import train_caption_tokenizer

__all__ = ["ClapTrainee", "ClapTrainingConfig", "train_caption_tokenizer"]
