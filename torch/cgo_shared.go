//go:build shim_shared

package torch

// With the shim_shared build tag shim.cpp is not compiled into the package:
// the binary links libfinetune_shim.so, the same shim built on its own by
// scripts/build-shim.sh against any libtorch. A binary built here can then
// run on a machine with another libtorch (a CUDA PyTorch wheel, say) once
// the shim is rebuilt there; it needs no Go toolchain.
//
// The library is found next to the binary ($ORIGIN), in build/shim of this
// checkout, or through LD_LIBRARY_PATH; build/shim must hold one when
// linking (scripts/build-shim.sh without arguments puts it there).
// tcmalloc is linked as in the default build (see cgo.go), and is found
// the same ways: a copy next to the binary serves a machine without it.

// #cgo LDFLAGS: -Wl,--no-as-needed -l:libtcmalloc_minimal.so.4 -Wl,--as-needed -L${SRCDIR}/../build/shim -lfinetune_shim -Wl,-rpath,$ORIGIN -Wl,-rpath,${SRCDIR}/../build/shim
import "C"
