package provenance_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/provenance"
)

var sinkBool bool

var benchWords = strings.Fields(`the a to of and in for on with is are was please
	payment invoice account transfer meeting calendar schedule reply forward attached
	Hello Regards Thanks team project update review Monday Friday EUR USD total due
	from subject date re: fwd: https://example.com/path?q=1 (see below) - * #`)

// benchTexts returns texts of about size bytes each, adding up to total
// bytes, of words, numbers, IBAN-like tokens and email addresses, and some
// values (20 to 40 bytes) that occur in them.
func benchTexts(total, size int) (texts, values []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < total; {
		var b strings.Builder
		for b.Len() < size {
			switch k := rng.IntN(40); {
			case k == 0:
				v := fmt.Sprintf("DE%02d%018d", rng.IntN(100), rng.Int64N(1e18))
				values = append(values, v)
				b.WriteString(v)
			case k == 1:
				v := fmt.Sprintf("user%d.name%d@mail%d.example.org", rng.IntN(1e6), rng.IntN(1e3), rng.IntN(100))
				values = append(values, v)
				b.WriteString(v)
			case k < 6:
				fmt.Fprintf(&b, "%d", rng.IntN(100000))
			default:
				b.WriteString(benchWords[rng.IntN(len(benchWords))])
			}
			if rng.IntN(12) == 0 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
		}
		texts = append(texts, b.String())
		n += b.Len()
	}
	return texts, values
}

// fullIndex returns an index holding about 1 MiB of untrusted text.
func fullIndex(b *testing.B) (*provenance.Index, []string) {
	b.Helper()
	texts, values := benchTexts(1<<20, 4<<10)
	ix := provenance.New(2 << 20)
	for _, t := range texts {
		ix.Add(t, false)
	}
	if ix.Truncated() {
		b.Fatal("index truncated")
	}
	return ix, values
}

func BenchmarkSeen(b *testing.B) {
	ix, values := fullIndex(b)
	absent := make([]string, len(values))
	for i, v := range values {
		absent[i] = v[:len(v)-1] + "x"
		if !ix.Seen(v, false) {
			b.Fatalf("value %q not seen", v)
		}
	}
	for _, bc := range []struct {
		name   string
		values []string
	}{{"present", values}, {"absent", absent}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkBool = ix.Seen(bc.values[i%len(bc.values)], false)
				i++
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					sinkBool = ix.Seen(bc.values[i%len(bc.values)], false)
					i++
				}
			})
		})
	}
}

func BenchmarkAdd(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		texts, _ := benchTexts(4<<20, size)
		b.Run(fmt.Sprintf("text=%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(texts[0])))
			ix := provenance.New(0) // steady state: evicts as it goes
			i := 0
			for b.Loop() {
				ix.Add(texts[i%len(texts)], false)
				i++
			}
		})
	}
}

// BenchmarkMemory reports the memory held per MiB of observed text, by
// Size and by the heap.
func BenchmarkMemory(b *testing.B) {
	texts, _ := benchTexts(1<<20, 4<<10)
	total := 0
	for _, t := range texts {
		total += len(t)
	}
	var size, heap float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := provenance.New(2 << 20)
		for _, t := range texts {
			ix.Add(t, false)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		size = float64(ix.Size())
		heap = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(ix)
	}
	mib := float64(total) / (1 << 20)
	b.ReportMetric(size/mib/(1<<20), "MiB-size/MiB-text")
	b.ReportMetric(heap/mib/(1<<20), "MiB-heap/MiB-text")
}
