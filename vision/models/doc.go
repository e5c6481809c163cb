// Package models builds torchvision's ResNet family — resnet18, resnet34,
// resnet50, resnet101, resnet152, wide_resnet50_2 and resnext50_32x4d —
// and, as Staged networks, MobileNetV3 (mobilenet_v3_small, _large),
// EfficientNet (efficientnet_b0 to _b4, efficientnet_v2_s, _v2_m) and
// RegNetY (regnet_y_400mf to regnet_y_16gf), besides ConvNeXt
// (convnext_tiny, convnext_small, convnext_base), the vision transformer
// vit_b_16 and the Swin transformer swin_t, with torchvision's module
// tree, state-dict keys and initialisation, and loads torchvision's
// ImageNet weights. Build makes any of them by name (Networks lists
// them); every one is a Network with named stages.
//
// Weights are given by path (.pth, .pt, .safetensors) or by name
// (IMAGENET1K_V1, IMAGENET1K_V2, others torchvision publishes, or
// BestAlias for the best).
// A name resolves to torchvision's file in torch hub's cache, so a user of
// torchvision already has it; a missing file is downloaded and checked
// against the hash prefix in its name. A classifier of another size than
// the file's is the usual fine-tuning case and is reported, not refused.
//
// Fuse builds a frozen backbone's inference-only copy with every
// BatchNorm folded into the convolution before it, the fast path for
// features that nothing trains. Block, FusedBlock and backbones of one's
// own share one residual-block forward pass, Residual.
package models
