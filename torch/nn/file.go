package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/tensorfile"
)

var fileDTypes = map[tensorfile.DType]torch.DType{
	tensorfile.F64: torch.Float64, tensorfile.F32: torch.Float32, tensorfile.F16: torch.Float16,
	tensorfile.BF16: torch.BFloat16, tensorfile.I64: torch.Int64, tensorfile.I32: torch.Int32,
	tensorfile.I16: torch.Int16, tensorfile.I8: torch.Int8, tensorfile.U8: torch.Uint8,
	tensorfile.Bool: torch.Bool,
}

// ReadStateDict reads the tensors of a .pth/.pt file written by torch.save
// or of a .safetensors file, in the file's order. The tensors are on the
// CPU and owned by the caller (or the current scope).
func ReadStateDict(path string) ([]Named[*torch.Tensor], error) {
	entries, err := tensorfile.Read(path)
	if err != nil {
		return nil, err
	}
	return toTorch(path, entries)
}

// ReadSafetensors reads a safetensors file's tensors, in file order, and
// its metadata.
func ReadSafetensors(path string) ([]Named[*torch.Tensor], map[string]string, error) {
	entries, md, err := tensorfile.ReadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	out, err := toTorch(path, entries)
	return out, md, err
}

func toTorch(path string, entries []tensorfile.Tensor) ([]Named[*torch.Tensor], error) {
	out := make([]Named[*torch.Tensor], 0, len(entries))
	for _, e := range entries {
		dt, ok := fileDTypes[e.DType]
		if !ok {
			return nil, fmt.Errorf("nn: %s: %s has unsupported dtype %s", path, e.Name, e.DType)
		}
		t, err := torch.FromBytes(e.Data, dt, e.Shape...)
		if err != nil {
			return nil, fmt.Errorf("nn: %s: %s: %w", path, e.Name, err)
		}
		out = append(out, Named[*torch.Tensor]{e.Name, t})
	}
	return out, nil
}

// LoadFile reads a weights file and loads it into m (see LoadStateDict).
// Errors name the file.
func LoadFile(m Module, path string, opts LoadOptions) (LoadReport, error) {
	s := torch.NewScope()
	defer s.Close()
	entries, err := ReadStateDict(path)
	if err != nil {
		return LoadReport{}, err
	}
	r, err := LoadStateDict(m, entries, opts)
	if err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteSafetensors writes entries to path atomically in the safetensors
// format, with string metadata.
func WriteSafetensors(path string, entries []Named[*torch.Tensor], metadata map[string]string) error {
	files, err := fileTensors(entries, true)
	if err != nil {
		return fmt.Errorf("nn: %s: %w", path, err)
	}
	return tensorfile.WriteSafetensors(path, files, metadata)
}

// SafetensorsSize returns the exact size in bytes of the file
// WriteSafetensors would write for entries and metadata.
func SafetensorsSize(entries []Named[*torch.Tensor], metadata map[string]string) (int64, error) {
	files, err := fileTensors(entries, false)
	if err != nil {
		return 0, fmt.Errorf("nn: %w", err)
	}
	return tensorfile.SafetensorsSize(files, metadata)
}

func fileTensors(entries []Named[*torch.Tensor], withData bool) ([]tensorfile.Tensor, error) {
	files := make([]tensorfile.Tensor, 0, len(entries))
	for _, e := range entries {
		var fdt tensorfile.DType
		for k, v := range fileDTypes {
			if v == e.Value.DType() {
				fdt = k
			}
		}
		if fdt == "" {
			return nil, fmt.Errorf("%s has unsupported dtype %v", e.Name, e.Value.DType())
		}
		f := tensorfile.Tensor{Name: e.Name, DType: fdt, Shape: e.Value.Shape()}
		if withData {
			raw, err := e.Value.Bytes()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Name, err)
			}
			f.Data = raw
		}
		files = append(files, f)
	}
	return files, nil
}
