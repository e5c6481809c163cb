//go:build !libtorch_env && !shim_shared

package torch

// The default build uses Debian's libtorch-dev (headers in /usr/include,
// libraries on the linker's path). scripts/libtorch-env.sh selects another
// libtorch (third_party/libtorch or $LIBTORCH) by setting the build tag
// libtorch_env and the CGO_* flags, so no source is edited.
//
// tcmalloc comes first and with --no-as-needed: nothing calls it by name,
// so --as-needed would drop it, and only a library the executable itself
// needs, ahead of libc, has its malloc serve libtorch's allocations too
// (Allocator reports which one does). The soname, not the -dev package's
// libtcmalloc_minimal.so, is what the link asks for: the runtime package
// (libtcmalloc-minimal4) is then all a machine needs.

// #cgo CXXFLAGS: -std=c++17 -O2 -I/usr/include/torch/csrc/api/include -Wno-unused-parameter -Wno-deprecated-declarations
// #cgo LDFLAGS: -Wl,--no-as-needed -l:libtcmalloc_minimal.so.4 -Wl,--as-needed -ltorch -ltorch_cpu -lc10 -lstdc++
import "C"
