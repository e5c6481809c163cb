package torch

// #define _GNU_SOURCE
// #include <dlfcn.h>
// #include <gnu/libc-version.h>
// #include <stdlib.h>
// #include <string.h>
//
// /* ft_malloc_library names the file of the malloc that this process's
//    calls resolve to, libtorch's included: the first definition in the
//    global scope, which is what interposition means. */
// static const char *ft_malloc_library(void) {
// 	Dl_info info;
// 	void *m = dlsym(RTLD_DEFAULT, "malloc");
// 	if (m == NULL || dladdr(m, &info) == 0 || info.dli_fname == NULL) return "";
// 	return info.dli_fname;
// }
//
// /* ft_malloc_version asks the allocator in library for its version; the
//    lookups go to that library alone, so a second allocator loaded later
//    (and not serving malloc) is not the one reported. */
// static const char *ft_malloc_version(const char *library) {
// 	void *h = dlopen(library, RTLD_LAZY | RTLD_NOLOAD);
// 	const char *v = "";
// 	if (h == NULL) return v;
// 	typedef const char *(*tc_version_fn)(int *, int *, const char **);
// 	typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
// 	tc_version_fn tc = (tc_version_fn)dlsym(h, "tc_version");
// 	mallctl_fn mc = (mallctl_fn)dlsym(h, "mallctl");
// 	if (tc != NULL) {
// 		int major, minor;
// 		const char *patch;
// 		v = tc(&major, &minor, &patch);
// 	} else if (mc != NULL) {
// 		size_t n = sizeof(v);
// 		if (mc("version", &v, &n, NULL, 0) != 0) v = "";
// 	} else if (dlsym(h, "gnu_get_libc_version") != NULL) {
// 		v = gnu_get_libc_version();
// 	}
// 	dlclose(h);
// 	return v;
// }
import "C"

import (
	"path/filepath"
	"strings"
)

// AllocatorInfo describes the malloc that serves the process: the Go
// bindings', libtorch's and every other C and C++ library's allocations.
type AllocatorInfo struct {
	// Name is "tcmalloc", "jemalloc" or "glibc", else the library's file
	// name.
	Name string
	// Version is the allocator's own, "2.10" or "5.3.0"; empty when it
	// does not say.
	Version string
	// Library is the file malloc resolves to.
	Library string
}

// Allocator reports the malloc in use. The torch package links tcmalloc
// into every program that imports it, because it keeps the memory a
// training step freed for the next one, where glibc's malloc returns every
// block above its mmap threshold (ResNet activations reach 100 MB) to the
// system and faults it in, zeroed, again at the next step. A program whose
// malloc is another one, glibc's say, was linked without it (see Building
// in the package documentation) or had another preloaded.
func Allocator() AllocatorInfo {
	clib := C.ft_malloc_library()
	lib := C.GoString(clib)
	if lib == "" {
		return AllocatorInfo{}
	}
	a := AllocatorInfo{Name: filepath.Base(lib), Library: lib}
	version := C.GoString(C.ft_malloc_version(clib))
	switch {
	case strings.HasPrefix(a.Name, "libtcmalloc"):
		// gperftools says "gperftools 2.10".
		a.Name, a.Version = "tcmalloc", strings.TrimPrefix(version, "gperftools ")
	case strings.HasPrefix(a.Name, "libjemalloc"):
		// jemalloc adds the commit: "5.3.0-0-g54eaed1d8b56…".
		a.Name = "jemalloc"
		a.Version, _, _ = strings.Cut(version, "-")
	case strings.HasPrefix(a.Name, "libc.so"):
		a.Name, a.Version = "glibc", version
	}
	return a
}

// String formats a for a version report: "tcmalloc 2.10".
func (a AllocatorInfo) String() string {
	if a.Version == "" {
		return a.Name
	}
	return a.Name + " " + a.Version
}
