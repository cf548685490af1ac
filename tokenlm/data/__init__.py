"""Data: manifests, datasets and the synthetic captioned audio benchmark (``tokenlm.data.synth``)."""
