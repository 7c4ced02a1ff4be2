"""Training data: RGB-D dataset readers, aligned augmentations, masking, depth randomisation."""
