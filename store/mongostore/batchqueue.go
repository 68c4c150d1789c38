package mongostore

import (
	"context"
	"sync"
)

// batchQueue is a queue that workers take from in batches: a worker waits
// for one item, takes whatever else is queued (up to max) without waiting,
// and runs the batch; while it runs, the next batch gathers. So the round
// trips per item fall as the rate rises (group commit), and an item that
// comes alone waits for nothing. The writer (writer.go; one worker, so
// batches run in queue order) and IsBlocked (lookups.go) use it.
type batchQueue[T any] struct {
	queue chan T
	mu    sync.RWMutex // held for reading while enqueueing
	shut  bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startBatchQueue starts workers goroutines that call run with batches of
// at most max items; run must not keep the slice.
func startBatchQueue[T any](size, max, workers int, run func([]T)) *batchQueue[T] {
	q := &batchQueue[T]{queue: make(chan T, size), stop: make(chan struct{})}
	for range workers {
		q.wg.Go(func() { q.work(max, run) })
	}
	return q
}

// put queues v. It fails with errClosed after close, and with ctx's error
// when ctx ends while the queue is full.
func (q *batchQueue[T]) put(ctx context.Context, v T) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.shut {
		return errClosed
	}
	select {
	case q.queue <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close runs what is queued, then stops the workers and waits for them.
func (q *batchQueue[T]) close() {
	q.mu.Lock()
	q.shut = true // no put can start any more
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
}

func (q *batchQueue[T]) work(max int, run func([]T)) {
	batch := make([]T, 0, max)
	for {
		var v T
		select {
		case v = <-q.queue:
		case <-q.stop:
			select {
			case v = <-q.queue: // drain what was queued before close
			default:
				return
			}
		}
		batch = append(batch[:0], v)
	gather:
		for len(batch) < max {
			select {
			case v := <-q.queue:
				batch = append(batch, v)
			default:
				break gather
			}
		}
		run(batch)
		clear(batch)
	}
}
