"""Neural-network building blocks shared by the VideoUNet and the VAE."""
