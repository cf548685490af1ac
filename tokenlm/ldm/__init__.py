"""The latent-diffusion backend: a 1-D DiT over the codec's continuous latent, sampled with diffusers' schedulers."""
