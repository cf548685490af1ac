"""Other projects' pretrained pipelines as tokenlm backends (backend ``diffusers``: AudioLDM, AudioLDM 2, MusicLDM,
Stable Audio)."""

from tokenlm.pipelines.diffusers_backend import (
    SUPPORTED_PIPELINES,
    DiffusersBackend,
    PipelineParams,
    is_diffusers_folder,
    load_pipeline,
)

__all__ = ["SUPPORTED_PIPELINES", "DiffusersBackend", "PipelineParams", "is_diffusers_folder", "load_pipeline"]
