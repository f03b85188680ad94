"""Change-detection networks of mars-icefrag.

Every model is called ``model(image1, image2)`` with [B,C,H,W] tensors and returns ONE
logit channel [B,1,H,W], as mars-core expects for binary change maps. Networks that the
literature defines with a two-class softmax head keep that head and return
``logit_change - logit_nochange``: for two classes this difference is exactly the
log-odds, so ``sigmoid(output)`` equals the softmax probability of the change class.
"""

from mars_icefrag.models.aam import AugmentedAttention, ConvBNReLU
from mars_icefrag.models.bit import BIT, bit
from mars_icefrag.models.classical import ClassicalDiff, classical_diff
from mars_icefrag.models.fc_siam import FCSiam, fc_ef, fc_siam_conc, fc_siam_diff
from mars_icefrag.models.siamese_resnet import SiameseResNet50, siamese_resnet50, siamese_resnet50_aam

__all__ = [
    "BIT",
    "AugmentedAttention",
    "ClassicalDiff",
    "ConvBNReLU",
    "FCSiam",
    "SiameseResNet50",
    "bit",
    "classical_diff",
    "fc_ef",
    "fc_siam_conc",
    "fc_siam_diff",
    "siamese_resnet50",
    "siamese_resnet50_aam",
]
