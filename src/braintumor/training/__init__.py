"""Training from scratch with PyTorch Lightning, on batches from the decoded cache."""
