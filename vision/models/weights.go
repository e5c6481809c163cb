package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// OfficialURL is where torchvision's weights are published.
const OfficialURL = "https://download.pytorch.org/models/"

// Weights names one of torchvision's pretrained checkpoints.
type Weights struct {
	Arch string
	Name string // IMAGENET1K_V1, IMAGENET1K_V2, IMAGENET1K_SWAG_E2E_V1…
	URL  string
}

// FileName is the checkpoint's name in torch hub's cache, as torchvision
// names it ("resnet50-11ad3fa6.pth").
func (w Weights) FileName() string { return path.Base(w.URL) }

var hashInName = regexp.MustCompile(`-([a-f0-9]+)\.`)

// HashPrefix is the leading hex digits of the file's SHA-256 that torch
// hub puts in the name, or "" when the name has none.
func (w Weights) HashPrefix() string {
	if m := hashInName.FindStringSubmatch(w.FileName()); m != nil {
		return m[1]
	}
	return ""
}

var published = map[string]map[string]string{
	"resnet18":           {"IMAGENET1K_V1": "resnet18-f37072fd.pth"},
	"resnet34":           {"IMAGENET1K_V1": "resnet34-b627a593.pth"},
	"resnet50":           {"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"},
	"resnet101":          {"IMAGENET1K_V1": "resnet101-63fe2227.pth", "IMAGENET1K_V2": "resnet101-cd907fc2.pth"},
	"resnet152":          {"IMAGENET1K_V1": "resnet152-394f9c45.pth", "IMAGENET1K_V2": "resnet152-f82ba261.pth"},
	"resnext50_32x4d":    {"IMAGENET1K_V1": "resnext50_32x4d-7cdf4587.pth", "IMAGENET1K_V2": "resnext50_32x4d-1a0047aa.pth"},
	"wide_resnet50_2":    {"IMAGENET1K_V1": "wide_resnet50_2-95faca4d.pth", "IMAGENET1K_V2": "wide_resnet50_2-9ba9bcbe.pth"},
	"mobilenet_v3_small": {"IMAGENET1K_V1": "mobilenet_v3_small-047dcff4.pth"},
	"mobilenet_v3_large": {"IMAGENET1K_V1": "mobilenet_v3_large-8738ca79.pth", "IMAGENET1K_V2": "mobilenet_v3_large-5c1a4163.pth"},
	"efficientnet_b0":    {"IMAGENET1K_V1": "efficientnet_b0_rwightman-3dd342df.pth"},
	"efficientnet_b1":    {"IMAGENET1K_V1": "efficientnet_b1_rwightman-533bc792.pth", "IMAGENET1K_V2": "efficientnet_b1-c27df63c.pth"},
	"efficientnet_b2":    {"IMAGENET1K_V1": "efficientnet_b2_rwightman-bcdf34b7.pth"},
	"efficientnet_b3":    {"IMAGENET1K_V1": "efficientnet_b3_rwightman-cf984f9c.pth"},
	"efficientnet_b4":    {"IMAGENET1K_V1": "efficientnet_b4_rwightman-7eb33cd5.pth"},
	"efficientnet_v2_s":  {"IMAGENET1K_V1": "efficientnet_v2_s-dd5fe13b.pth"},
	"efficientnet_v2_m":  {"IMAGENET1K_V1": "efficientnet_v2_m-dc08266a.pth"},
	"regnet_y_400mf":     {"IMAGENET1K_V1": "regnet_y_400mf-c65dace8.pth", "IMAGENET1K_V2": "regnet_y_400mf-e6988f5f.pth"},
	"regnet_y_800mf":     {"IMAGENET1K_V1": "regnet_y_800mf-1b27b58c.pth", "IMAGENET1K_V2": "regnet_y_800mf-58fc7688.pth"},
	"regnet_y_1_6gf":     {"IMAGENET1K_V1": "regnet_y_1_6gf-b11a554e.pth", "IMAGENET1K_V2": "regnet_y_1_6gf-0d7bc02a.pth"},
	"regnet_y_3_2gf":     {"IMAGENET1K_V1": "regnet_y_3_2gf-b5a9779c.pth", "IMAGENET1K_V2": "regnet_y_3_2gf-9180c971.pth"},
	"regnet_y_8gf":       {"IMAGENET1K_V1": "regnet_y_8gf-d0d0e4a8.pth", "IMAGENET1K_V2": "regnet_y_8gf-dc2b1b54.pth"},
	// The SWAG weights are trained at 384 px (E2E) or are a linear probe
	// of SWAG features (LINEAR); torchvision's default stays V2.
	"regnet_y_16gf": {"IMAGENET1K_V1": "regnet_y_16gf-9e6ed7dd.pth", "IMAGENET1K_V2": "regnet_y_16gf-3e4a00f9.pth",
		"IMAGENET1K_SWAG_E2E_V1": "regnet_y_16gf_swag-43afe44d.pth", "IMAGENET1K_SWAG_LINEAR_V1": "regnet_y_16gf_lc_swag-f3ec0043.pth"},
	"convnext_tiny":  {"IMAGENET1K_V1": "convnext_tiny-983f1562.pth"},
	"convnext_small": {"IMAGENET1K_V1": "convnext_small-0c510722.pth"},
	"convnext_base":  {"IMAGENET1K_V1": "convnext_base-6075fbad.pth"},
	"vit_b_16":       {"IMAGENET1K_V1": "vit_b_16-c867db91.pth"},
	"swin_t":         {"IMAGENET1K_V1": "swin_t-704ceda3.pth"},
}

// BestAlias names the best published weights of an architecture
// (torchvision's DEFAULT): V2 where it exists, else V1.
const BestAlias = "imagenet"

// LookupWeights returns the published weights of arch called name:
// IMAGENET1K_V1, IMAGENET1K_V2, or BestAlias (also "DEFAULT").
func LookupWeights(arch, name string) (Weights, error) {
	files, ok := published[arch]
	if !ok {
		return Weights{}, fmt.Errorf("models: no published weights for architecture %q", arch)
	}
	if name == BestAlias || name == "DEFAULT" {
		name = "IMAGENET1K_V1"
		if _, ok := files["IMAGENET1K_V2"]; ok {
			name = "IMAGENET1K_V2"
		}
	}
	file, ok := files[name]
	if !ok {
		var names []string
		for n := range files {
			names = append(names, n)
		}
		return Weights{}, fmt.Errorf("models: %s has no weights %q (published: %s, or %q for the best)",
			arch, name, strings.Join(names, ", "), BestAlias)
	}
	return Weights{Arch: arch, Name: name, URL: OfficialURL + file}, nil
}

// IsWeightsName reports whether spec names published weights rather than a
// file path.
func IsWeightsName(spec string) bool {
	return spec == BestAlias || spec == "DEFAULT" || strings.HasPrefix(spec, "IMAGENET1K_")
}

// Hub finds weights in torch hub's cache and downloads missing ones.
type Hub struct {
	// Dir is the cache folder; DefaultHub uses torch hub's.
	Dir string
	// BaseURL, when set, replaces OfficialURL (a mirror, or a test server).
	BaseURL string
	// Client makes the requests; nil means a client with a 30 s timeout
	// per read.
	Client *http.Client
	// Progress receives a progress line while downloading; nil for none.
	Progress io.Writer
}

// DefaultHub uses the cache folder torchvision uses:
// $TORCH_HOME/hub/checkpoints, where TORCH_HOME defaults to
// $XDG_CACHE_HOME/torch or ~/.cache/torch.
func DefaultHub() *Hub {
	home := os.Getenv("TORCH_HOME")
	if home == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			if h, err := os.UserHomeDir(); err == nil {
				cache = filepath.Join(h, ".cache")
			}
		}
		home = filepath.Join(cache, "torch")
	}
	return &Hub{Dir: filepath.Join(home, "hub", "checkpoints")}
}

func (h *Hub) url(w Weights) string {
	if h.BaseURL != "" && strings.HasPrefix(w.URL, OfficialURL) {
		return strings.TrimSuffix(h.BaseURL, "/") + "/" + strings.TrimPrefix(w.URL, OfficialURL)
	}
	return w.URL
}

// Fetch returns the path of w in the cache, downloading it first when it
// is missing. A download is checked against the hash prefix in the file
// name and only then moved into place.
func (h *Hub) Fetch(ctx context.Context, w Weights) (string, error) {
	dst := filepath.Join(h.Dir, w.FileName())
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	url := h.url(w)
	if err := h.download(ctx, url, dst, w.HashPrefix()); err != nil {
		return "", fmt.Errorf("models: %s %s is not in %s and could not be downloaded (%w); "+
			"on a machine without internet, download %s and put it at %s", w.Arch, w.Name, h.Dir, err, url, dst)
	}
	return dst, nil
}

func (h *Hub) download(ctx context.Context, url, dst, hashPrefix string) error {
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := h.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 30 * time.Second, Proxy: http.ProxyFromEnvironment}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(h.Dir, "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	var body io.Reader = io.TeeReader(resp.Body, sum)
	if h.Progress != nil {
		body = &progressReader{r: body, w: h.Progress, name: filepath.Base(dst), total: resp.ContentLength}
	}
	if _, err := io.Copy(tmp, body); err != nil {
		return fmt.Errorf("downloading %s: %w", url, err)
	}
	if h.Progress != nil {
		fmt.Fprintln(h.Progress)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); !strings.HasPrefix(got, hashPrefix) {
		return fmt.Errorf("downloaded %s has SHA-256 %s, the file name says %s…: the download is corrupt", url, got[:max(len(hashPrefix), 8)], hashPrefix)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

type progressReader struct {
	r           io.Reader
	w           io.Writer
	name        string
	total, done int64
	last        time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) > 100*time.Millisecond || errors.Is(err, io.EOF) {
		p.last = now
		if p.total > 0 {
			fmt.Fprintf(p.w, "\rdownloading %s: %3d%% (%.1f/%.1f MB)", p.name, p.done*100/p.total, float64(p.done)/1e6, float64(p.total)/1e6)
		} else {
			fmt.Fprintf(p.w, "\rdownloading %s: %.1f MB", p.name, float64(p.done)/1e6)
		}
	}
	return n, err
}

// LoadWeights loads spec into m: a file path (.pth, .pt or .safetensors)
// or a published weights name (see LookupWeights), fetched through hub.
// Every backbone tensor must be present with its shape; a classifier of
// another size than the file's (num_classes ≠ 1000, the usual fine-tuning
// case) keeps its fresh initialisation and is listed in the report's
// Mismatched, not an error. A model built without a classifier ignores the
// file's. Keys saved with a wrapper's prefix (DataParallel's "module.")
// load without it, as the report's Stripped says; tensors with NaN or
// infinite values are an error naming the tensor.
func LoadWeights(ctx context.Context, m Network, spec string, hub *Hub) (nn.LoadReport, error) {
	file := spec
	if IsWeightsName(spec) {
		w, err := LookupWeights(m.ArchName(), spec)
		if err != nil {
			return nn.LoadReport{}, err
		}
		if hub == nil {
			hub = DefaultHub()
		}
		if file, err = hub.Fetch(ctx, w); err != nil {
			return nn.LoadReport{}, err
		}
	}
	s := torch.NewScope()
	defer s.Close()
	entries, err := nn.ReadStateDict(file)
	if err != nil {
		return nn.LoadReport{}, err
	}
	head, built := m.Classifier()
	isHead := func(key string) bool {
		for _, p := range nn.CommonPrefixes {
			if rest, ok := strings.CutPrefix(key, p); ok {
				key = rest
				break
			}
		}
		return strings.HasPrefix(key, head)
	}
	if !built {
		entries = slices.DeleteFunc(entries, func(e nn.Named[*torch.Tensor]) bool { return isHead(e.Name) })
	}
	r, err := nn.LoadStateDict(m, entries, nn.LoadOptions{SkipMismatched: true, SkipMismatchedIf: isHead})
	if err != nil {
		return r, fmt.Errorf("%s: %w", file, err)
	}
	return r, nil
}
