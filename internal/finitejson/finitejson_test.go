package finitejson

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type inner struct {
	Path string `json:"path"`
}

type record struct {
	inner
	Epoch   int                `json:"epoch"`
	Loss    float64            `json:"loss"`
	Acc     *float64           `json:"acc,omitempty"`
	Extra   map[string]float64 `json:"extra,omitempty"`
	List    []float32          `json:"list"`
	When    time.Time          `json:"when"`
	Skip    string             `json:"-"`
	private int
	Plain   any
}

// TestMarshal: non-finite numbers become null wherever they are, and the
// rest is what encoding/json writes, in the same order.
func TestMarshal(t *testing.T) {
	acc := 0.5
	when := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	r := record{inner: inner{"a\x1b"}, Epoch: 3, Loss: 1.5, Acc: &acc, Extra: map[string]float64{"b": 2, "a": 1},
		List: []float32{1, 2}, When: when, Skip: "x", private: 1, Plain: 2.5}
	want, err := json.Marshal(r)
	require.NoError(t, err)
	got, err := Marshal(r)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "a finite value encodes as encoding/json encodes it")

	nan := math.NaN()
	r.Loss, r.Acc, r.Extra["b"], r.List[1], r.Plain = nan, &nan, math.Inf(1), float32(math.Inf(-1)), nan
	_, err = json.Marshal(r)
	require.ErrorContains(t, err, "unsupported value")
	got, err = Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, `{"path":"a\u001b","epoch":3,"loss":null,"acc":null,"extra":{"a":1,"b":null},"list":[1,null],"when":"2026-12-03T11:00:00Z","Plain":null}`, string(got))
	require.Regexp(t, `^\{"path".*"epoch".*"loss".*"acc".*"extra".*"list".*"when".*"Plain"`, string(got), "fields keep their order")

	got, err = MarshalIndent(map[string]any{"v": nan}, "", "  ")
	require.NoError(t, err)
	require.Equal(t, "{\n  \"v\": null\n}", string(got))
}
