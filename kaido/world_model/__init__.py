"""Foundation backbone, action-conditioned latent dynamics, decoders and Lightning wrappers."""
