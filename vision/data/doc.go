// Package data reads image classification datasets and turns their files
// into normalised float32 images, reproducing what torchvision does in
// Python so that a model fine-tuned here sees the pixels it would see
// there.
//
// The flow has four stages, each usable on its own:
//
//   - ImageFolder lists root/<class>/<image> files with torchvision's class
//     and sample order; Dataset reports class counts, imbalance and
//     balancing loss weights, and MatchClasses checks that train,
//     validation and test folders agree on the classes.
//   - StratifiedSplit and StratifiedKFold split sample indices by class,
//     reproducibly from a seed.
//   - Decode reads JPEG, PNG, GIF, BMP and WebP files as RGB, the way PIL's
//     Image.open(path).convert("RGB") does, applying JPEG EXIF orientation
//     and refusing images over a pixel limit before decoding them. It uses
//     Go's decoders but converts their YCbCr output as libjpeg-turbo and
//     libwebp do. DecodeTurbo, the default, decodes JPEGs with
//     libjpeg-turbo through cgo instead, as PIL does, several times faster
//     and pixel for pixel; DecodeScaled also uses its DCT scaling to decode
//     large JPEGs straight to a fraction of their size.
//   - A Pipeline runs image Steps (Resize, CenterCrop, RandomResizedCrop,
//     HorizontalFlip, VerticalFlip, RandomRotation, ColorJitter), then
//     ToCHW and Normalize, producing a CHW: 3×H×W float32 values in the
//     layout of a torch tensor. A Loader ties a Dataset, a Decoder and a
//     Pipeline together, sample by sample.
//   - A BatchLoader serves a Loader's samples as batches of torch tensors,
//     epoch after epoch: worker goroutines decode and augment in parallel
//     ahead of the consumer, the order and the augmentation are
//     reproducible from a seed, and decoded images are cached within a
//     memory budget so that later epochs only augment.
//
// # Fidelity to torchvision
//
// The steps reimplement torchvision 0.14 on PIL images rather than
// approximating them: bilinear resizing is PIL's fixed-point antialiased
// filter, crop offsets use Python's round-half-to-even, rotation is PIL's
// nearest-neighbour affine scan, and the colour adjustments are PIL's
// ImageEnhance blends and 8-bit HSV conversion, so their outputs equal
// PIL's byte for byte. The tests check this against fixtures that
// scripts/fixtures/data.py generates with PIL and torchvision. Images are
// *image.NRGBA values that are always opaque; steps return new images and
// never modify their input.
//
// # Randomness
//
// Every random step draws from an explicit *math/rand/v2.Rand, in the same
// order as torchvision draws from torch's generator (the streams differ,
// so the values do not match Python's), and a seeded generator reproduces
// a pipeline's output exactly. Steps report whether they are random, and
// so does a Pipeline. EvalPipeline takes no augmentation settings at all,
// so a validation or test pipeline cannot be augmented by mistake.
package data
