package runfolder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/finetune-go/finetune/finetune"
)

// ReadMetrics reads a run folder's metrics.jsonl, an epoch a line; a
// number the run could not write (NaN, infinite) reads as 0.
func ReadMetrics(path string) ([]finetune.EpochMetrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []finetune.EpochMetrics
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var em finetune.EpochMetrics
		if err := json.Unmarshal(sc.Bytes(), &em); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, em)
	}
	return out, sc.Err()
}
