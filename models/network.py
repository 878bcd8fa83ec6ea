"""The cascade's network (Valverde et al. 2017) in two exactly equivalent forms.

Patch form: an 11³ patch goes through conv 3³×32 + BN + ReLU + max-pool 2, conv 3³×64 + BN +
ReLU + max-pool 2, dropout, dense 256 + ReLU, dense 2 (softmax outside). All convolutions are
*valid* (no padding), so 11 → 9 → 4 → 2 → 1 and the dense layers see a 64×1×1×1 tensor. The
dense layers are therefore 1×1×1 convolutions.

Dense form: the same weights applied to a whole tile. Stride-2 pooling becomes stride-1
pooling and every later layer is dilated by the product of earlier strides (à trous), which
gives the patch classifier's output at every voxel. With valid convolutions nothing depends on
where the patch boundary falls, so dense and patch outputs agree to rounding error. ('Same'
padding would zero-pad inside each patch and make the two differ.)

Geometry: an output voxel ``o`` of the dense form is the patch whose first voxel is input
``o``, i.e. the patch centred on ``o + 5``. A tile of input size ``n`` yields ``n - 9`` outputs
because floor-pooling 9 → 4 leaves the last row of the patch unused: the receptive field is
10³ inside the 11³ patch, voxels ``centre-5 .. centre+4``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 11
HALO_BEFORE = PATCH_SIZE // 2  # input voxels needed before an output voxel
HALO_AFTER = 4  # input voxels needed after it (receptive field ends at centre + 4)


class CascadeNet(nn.Module):
    """One network of the cascade; net 1 and net 2 share this architecture."""

    def __init__(
        self,
        in_channels: int,
        conv1: int = 32,
        conv2: int = 64,
        dense: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv3d(in_channels, conv1, kernel_size=3)
        self.bn1 = nn.BatchNorm3d(conv1)
        self.conv2 = nn.Conv3d(conv1, conv2, kernel_size=3)
        self.bn2 = nn.BatchNorm3d(conv2)
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Conv3d(conv2, dense, kernel_size=1)
        self.fc2 = nn.Conv3d(dense, 2, kernel_size=1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2) for patches (N, C, 11, 11, 11)."""
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(patches))), 2)
        x = F.max_pool3d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.fc1(self.drop(x)))
        return self.fc2(x).flatten(1)

    def dense_forward(self, volume: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2, D-9, H-9, W-9) at every voxel of a tile (N, C, D, H, W); eval mode only."""
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(volume))), 2, stride=1)
        x = F.conv3d(x, self.conv2.weight, self.conv2.bias, dilation=2)
        x = F.max_pool3d(F.relu(self.bn2(x)), 2, stride=1, dilation=2)
        x = F.relu(self.fc1(x))
        return self.fc2(x)

    def feature_modules(self) -> list[nn.Module]:
        """The convolutional part, frozen when fine-tuning on a few local scans."""
        return [self.conv1, self.bn1, self.conv2, self.bn2]

    def freeze_features(self) -> None:
        """Freeze conv/BN layers (transfer learning: only the dense layers are retrained)."""
        for module in self.feature_modules():
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> CascadeNet:
        """Like nn.Module.train, but frozen BN layers keep their running statistics."""
        super().train(mode)
        for bn in (self.bn1, self.bn2):
            if not any(p.requires_grad for p in bn.parameters()):
                bn.eval()
        return self
