package main

import (
	"slices"
	"time"
)

// Summary describes a set of latencies, in microseconds.
type Summary struct {
	N      int     `json:"n"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	MaxUS  float64 `json:"max_us"`
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank: the smallest value with at least p% of the values at
	// or below it.
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// summarize sorts ds in place and describes it.
func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Summary{
		N:      len(ds),
		MeanUS: micros(sum / time.Duration(len(ds))),
		P50US:  micros(percentile(ds, 50)),
		P90US:  micros(percentile(ds, 90)),
		P99US:  micros(percentile(ds, 99)),
		MaxUS:  micros(ds[len(ds)-1]),
	}
}

// StreamSummary describes a set of streamed answers.
type StreamSummary struct {
	N int `json:"n"`
	// Chunks is the number of data events per stream (they all match).
	Chunks int `json:"chunks"`
	// TTFC is the time to the first chunk.
	TTFCP50US float64 `json:"ttfc_p50_us"`
	TTFCP99US float64 `json:"ttfc_p99_us"`
	// Total is the time to the end of the stream.
	TotalP50US float64 `json:"total_p50_us"`
	// ChunksPerSecP50 is the median over streams of chunks divided by the
	// stream's total time.
	ChunksPerSecP50 float64 `json:"chunks_per_sec_p50"`
}

// summarizeStreams describes rs; it reports false when the streams did
// not all carry the same number of chunks.
func summarizeStreams(rs []streamResult) (StreamSummary, bool) {
	if len(rs) == 0 {
		return StreamSummary{}, true
	}
	first := make([]time.Duration, len(rs))
	total := make([]time.Duration, len(rs))
	// Rates are kept as the time per chunk so that they sort as
	// durations; the median rate is the inverse of the median time per
	// chunk.
	perChunk := make([]time.Duration, len(rs))
	same := true
	for i, r := range rs {
		first[i], total[i] = r.firstChunk, r.total
		perChunk[i] = r.total / time.Duration(max(r.chunks, 1))
		if r.chunks != rs[0].chunks {
			same = false
		}
	}
	slices.Sort(first)
	slices.Sort(total)
	slices.Sort(perChunk)
	s := StreamSummary{
		N:          len(rs),
		Chunks:     rs[0].chunks,
		TTFCP50US:  micros(percentile(first, 50)),
		TTFCP99US:  micros(percentile(first, 99)),
		TotalP50US: micros(percentile(total, 50)),
	}
	if m := percentile(perChunk, 50); m > 0 {
		s.ChunksPerSecP50 = float64(time.Second) / float64(m)
	}
	return s, same
}

// ratio is a/b, or 0 (shown as "-") when b is not positive: every
// baseline is a rate or a latency, and a latency added by the baseline
// proxy can come out at or below zero in a noisy run, where a ratio
// against it means nothing.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// median returns the median of vs (the lower middle value of an even
// count), or 0 when it is empty.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// medianSummary describes each round of latencies and returns, for each
// statistic, its median over the rounds; N is the total count.
func medianSummary(rounds [][]time.Duration) Summary {
	var mean, p50, p90, p99, mx []float64
	n := 0
	for _, ds := range rounds {
		if len(ds) == 0 {
			continue
		}
		s := summarize(ds)
		n += s.N
		mean, p50, p90, p99, mx = append(mean, s.MeanUS), append(p50, s.P50US), append(p90, s.P90US), append(p99, s.P99US), append(mx, s.MaxUS)
	}
	return Summary{N: n, MeanUS: median(mean), P50US: median(p50), P90US: median(p90), P99US: median(p99), MaxUS: median(mx)}
}

// medianStreams returns, for each statistic of the rounds' stream
// summaries, its median; N is the total count.
func medianStreams(rounds []StreamSummary) StreamSummary {
	var ttfc50, ttfc99, total, cps []float64
	out := StreamSummary{}
	for _, s := range rounds {
		if s.N == 0 {
			continue
		}
		out.N += s.N
		out.Chunks = s.Chunks
		ttfc50, ttfc99 = append(ttfc50, s.TTFCP50US), append(ttfc99, s.TTFCP99US)
		total, cps = append(total, s.TotalP50US), append(cps, s.ChunksPerSecP50)
	}
	out.TTFCP50US, out.TTFCP99US = median(ttfc50), median(ttfc99)
	out.TotalP50US, out.ChunksPerSecP50 = median(total), median(cps)
	return out
}
