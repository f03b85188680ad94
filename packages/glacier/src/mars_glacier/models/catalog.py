"""The nine architectures of the glacier task: names, smp classes, descriptions (no torch).

The plugin reads these on every CLI start, so this module imports nothing heavy. Every
model takes ``in_channels`` (4: red, green, blue, nir), ``dropout``, ``activation`` and
``pooling`` (what each means per architecture: the package README) and returns one logit
channel. Default encoder: ResNet-18, ``encoder_weights=None`` (nothing is downloaded).
"""

from __future__ import annotations

DEFAULT_ENCODER = "resnet18"

SMP_ARCHITECTURES: dict[str, str] = {
    "unetplusplus": "UnetPlusPlus",
    "manet": "MAnet",
    "linknet": "Linknet",
    "fpn": "FPN",
    "pspnet": "PSPNet",
    "pan": "PAN",
    "deeplabv3plus": "DeepLabV3Plus",
}

DESCRIPTIONS: dict[str, str] = {
    "unetplusplus": "U-Net++ (smp, ResNet-18 encoder, nested dense skips)",
    "manet": "MA-Net (smp, ResNet-18 encoder, position-wise + multi-scale fusion attention)",
    "linknet": "LinkNet (smp, ResNet-18 encoder, additive skips)",
    "fpn": "FPN (smp, ResNet-18 encoder, feature pyramid)",
    "pspnet": "PSPNet (smp, ResNet-18 encoder, pyramid pooling)",
    "pan": "PAN (smp, ResNet-18 encoder, pyramid attention)",
    "deeplabv3plus": "DeepLabV3+ (smp, ResNet-18 encoder, atrous spatial pyramid pooling)",
    "maresunet": "MAResU-Net (this package: residual U-Net with linear attention at every stage)",
    "wavemix": "WaveMix (this package: Haar-wavelet token mixing blocks)",
}

#: Registered model name -> "module:attr". Names carry the prefix ``glacier-``: model names
#: are global across installed task packages and landslide already registers
#: ``unetplusplus``, ``deeplabv3plus`` and ``pspnet`` (7-band, other defaults).
PREFIX = "glacier-"
FACTORIES: dict[str, str] = {
    **{PREFIX + name: f"mars_glacier.models.smp_nine:{name}" for name in SMP_ARCHITECTURES},
    PREFIX + "maresunet": "mars_glacier.models.maresunet:maresunet",
    PREFIX + "wavemix": "mars_glacier.models.wavemix:wavemix",
}
