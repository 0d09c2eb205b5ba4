"""Datasets for video visible-infrared re-ID: benchmark readers, the synthetic generator, sampling."""

from models.data.bupt import load_bupt
from models.data.sampler import VVIBatchSampler, evenly_spaced_indices, restricted_random_indices
from models.data.tracklet import IR, MODALITY_NAMES, RGB, Tracklet, VVIDataset
from models.data.vcm import load_vcm

__all__ = [
    "IR",
    "MODALITY_NAMES",
    "RGB",
    "Tracklet",
    "VVIBatchSampler",
    "VVIDataset",
    "evenly_spaced_indices",
    "load_bupt",
    "load_vcm",
    "restricted_random_indices",
]
