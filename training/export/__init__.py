"""Tools that turn a trained model into the files the node runs (quantisation)."""
