// Package tfevents writes TensorBoard event files: scalars per step,
// images and markdown text, framed as TFRecords, with no dependency on TensorFlow or protobuf.
//
// An event file is an append-only stream: every record carries the CRC of
// its length and of its data, so a reader (TensorBoard) skips a record
// torn by a crash, and can follow the file while it grows.
package tfevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/finetune-go/finetune/finetune"
)

// Writer writes summaries to a TensorBoard event file,
// events.out.tfevents.<seconds>.<host>: TFRecord framing (length, masked
// CRC-32C of the length, data, masked CRC-32C of the data) around
// Event protocol buffers encoded by hand, after the file_version event
// "brain.Event:2" that TensorBoard expects first.
type Writer struct {
	f    *os.File
	path string
	size int64
}

// Create creates an event file in dir.
func Create(dir string) (*Writer, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	name := fmt.Sprintf("events.out.tfevents.%d.%s", time.Now().Unix(), host)
	path := filepath.Join(dir, name)
	var f *os.File
	for i := 1; ; i++ {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		path = filepath.Join(dir, fmt.Sprintf("%s.%d", name, i))
	}
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	tb := &Writer{f: f, path: path}
	ev := appendDouble(nil, 1, wallTime())
	ev = appendBytes(ev, 3, []byte("brain.Event:2"))
	if err := tb.record(ev); err != nil {
		f.Close()
		return nil, err
	}
	return tb, nil
}

// Path returns the event file's path.
func (tb *Writer) Path() string { return tb.path }

// Scalars writes tagged values at step, as one event.
func (tb *Writer) Scalars(step int64, values map[string]float64) error {
	var summary []byte
	for _, tag := range slices.Sorted(maps.Keys(values)) {
		v := appendBytes(nil, 1, []byte(tag))
		v = binary.AppendUvarint(v, 2<<3|5)
		v = binary.LittleEndian.AppendUint32(v, math.Float32bits(float32(values[tag])))
		summary = appendBytes(summary, 1, v)
	}
	return tb.summary(step, summary)
}

// summary writes an event with a Summary at step.
func (tb *Writer) summary(step int64, summary []byte) error {
	ev := appendDouble(nil, 1, wallTime())
	ev = binary.AppendUvarint(ev, 2<<3|0)
	ev = binary.AppendUvarint(ev, uint64(step))
	ev = appendBytes(ev, 5, summary)
	return tb.record(ev)
}

// Image writes a PNG of width×height pixels under tag at step
// (TensorBoard's images dashboard).
func (tb *Writer) Image(step int64, tag string, png []byte, width, height int) error {
	img := binary.AppendUvarint(nil, 1<<3|0)
	img = binary.AppendUvarint(img, uint64(height))
	img = binary.AppendUvarint(img, 2<<3|0)
	img = binary.AppendUvarint(img, uint64(width))
	img = binary.AppendUvarint(img, 3<<3|0)
	img = binary.AppendUvarint(img, 4) // RGBA
	img = appendBytes(img, 4, png)
	v := appendBytes(nil, 1, []byte(tag))
	v = appendBytes(v, 4, img)
	return tb.summary(step, appendBytes(nil, 1, v))
}

// Text writes markdown text under tag at step (TensorBoard's text
// dashboard): a string tensor with the text plugin's metadata.
func (tb *Writer) Text(step int64, tag, markdown string) error {
	tensor := binary.AppendUvarint(nil, 1<<3|0)
	tensor = binary.AppendUvarint(tensor, 7) // DT_STRING
	tensor = appendBytes(tensor, 2, nil)     // a scalar's shape
	tensor = appendBytes(tensor, 8, []byte(markdown))
	plugin := appendBytes(nil, 1, []byte("text"))
	v := appendBytes(nil, 1, []byte(tag))
	v = appendBytes(v, 8, tensor)
	v = appendBytes(v, 9, appendBytes(nil, 1, plugin))
	return tb.summary(step, appendBytes(nil, 1, v))
}

// Epoch writes an epoch's train/loss and train/step_accuracy (the
// training steps', under augmentation), train/accuracy and
// train/eval_loss (evaluation mode), val/loss, val/accuracy, gap and lr
// at its global epoch.
func (tb *Writer) Epoch(em finetune.EpochMetrics) error {
	return tb.Scalars(int64(em.GlobalEpoch), map[string]float64{
		"train/loss": em.TrainLoss, "train/step_accuracy": em.TrainStepAccuracy,
		"train/accuracy": em.TrainAccuracy, "train/eval_loss": em.TrainEvalLoss,
		"val/loss": em.ValLoss, "val/accuracy": em.ValAccuracy, "gap": em.Gap, "lr": em.LR,
	})
}

// Size returns the number of bytes written.
func (tb *Writer) Size() int64 { return tb.size }

// Close closes the file.
func (tb *Writer) Close() error { return tb.f.Close() }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's checksum: CRC-32C rotated and offset so that a
// checksum of data holding checksums stays well distributed.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// record writes data as one TFRecord.
func (tb *Writer) record(data []byte) error {
	n := binary.LittleEndian.AppendUint64(nil, uint64(len(data)))
	rec := binary.LittleEndian.AppendUint32(n, maskedCRC(n))
	rec = append(rec, data...)
	rec = binary.LittleEndian.AppendUint32(rec, maskedCRC(data))
	written, err := tb.f.Write(rec)
	tb.size += int64(written)
	if err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	return nil
}

func wallTime() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// appendDouble appends protobuf field f as a double (wire type 1).
func appendDouble(b []byte, f uint64, v float64) []byte {
	b = binary.AppendUvarint(b, f<<3|1)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// appendBytes appends protobuf field f as length-delimited bytes (wire
// type 2): a string or an embedded message.
func appendBytes(b []byte, f uint64, v []byte) []byte {
	b = binary.AppendUvarint(b, f<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
