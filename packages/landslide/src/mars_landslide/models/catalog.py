"""Names, encoders and one-line descriptions of the smp baselines, without importing torch.

The plugin registers every baseline on each CLI start (``mars-core --help`` included); it
reads the names from here so that only building a model imports torch and smp.
"""

from __future__ import annotations

DEFAULT_ENCODERS: dict[str, str] = {
    "unet": "vgg11_bn",
    "resunet": "resnet34",
    "unetplusplus": "resnet18",
    "deeplabv3plus": "resnet18",
    "pspnet": "resnet18",
    "segformer": "mit_b0",
}
ARCHITECTURES: dict[str, str] = {
    "unet": "Unet",
    "resunet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "deeplabv3plus": "DeepLabV3Plus",
    "pspnet": "PSPNet",
    "segformer": "Segformer",
}
DESCRIPTIONS: dict[str, str] = {
    "unet": "U-Net (smp, plain VGG11-BN encoder)",
    "resunet": "ResU-Net (smp U-Net, ResNet-34 encoder)",
    "unetplusplus": "U-Net++ (smp, ResNet-18 encoder)",
    "deeplabv3plus": "DeepLabV3+ (smp, ResNet-18 encoder)",
    "pspnet": "PSPNet (smp, ResNet-18 encoder)",
    "segformer": "SegFormer (smp, MiT-B0 encoder)",
}
