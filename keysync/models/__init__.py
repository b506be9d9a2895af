"""Model definitions: VideoUNet, VAE, conditioning, input wrappers and checkpoint loading."""
