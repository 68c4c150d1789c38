package sqlitestore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkFileSync is the probe behind keeping a restarted log's file at
// its limit (wal.go, TestWALRestartKeepsFile): what a commit's sync costs
// when the commit appends to the file against when it overwrites blocks
// the file already has. Each iteration writes 32 KiB (a commit of a few
// messages' pages) after the last and syncs as SQLite does (fsync);
// "overwrite" first fills the file with 64 MiB and syncs that. Run it on
// the disk that holds the data directory:
//
//	TMPDIR=/var/tmp go test -run xxx -bench FileSync -benchtime 1500x ./store/sqlitestore
func BenchmarkFileSync(b *testing.B) {
	for _, mode := range []string{"append", "overwrite"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "wal"), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 32<<10)
			if mode == "overwrite" {
				for off := int64(0); off < 64<<20; off += int64(len(buf)) {
					if _, err := f.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				off := int64(i) * int64(len(buf)) // past the end
				if mode == "overwrite" {
					off %= 64 << 20 // within the 64 MiB written before
				}
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "sync-p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "sync-p99-µs")
		})
	}
}
