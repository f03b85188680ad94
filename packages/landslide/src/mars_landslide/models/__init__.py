"""Models of the landslide task: MarsLS-Net and segmentation-models-pytorch baselines."""
