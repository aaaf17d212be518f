"""Training and fine-tuning of embedding networks with the FaceNet triplet loss.

Beside the inference path: it imports faceprint's stages (detection, alignment, the model
registry), never the reverse. ``faceprint train`` is the command-line front end.
"""

from .data import ChipSet, PairSet, hold_out_identities, identity_images, load_identity_folder, make_chips
from .losses import pairwise_sq_distances, triplet_loss
from .mining import batch_all, batch_hard, get_miner, semi_hard
from .sampler import PKSampler
from .trainer import TrainConfig, Trainer, evaluate_pairs

__all__ = [
    "ChipSet",
    "PKSampler",
    "PairSet",
    "TrainConfig",
    "Trainer",
    "batch_all",
    "batch_hard",
    "evaluate_pairs",
    "get_miner",
    "hold_out_identities",
    "identity_images",
    "load_identity_folder",
    "make_chips",
    "pairwise_sq_distances",
    "semi_hard",
    "triplet_loss",
]
