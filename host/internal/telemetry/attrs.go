package telemetry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric attribute sets are built once per distinct combination of
// values and reused: building one sorts and copies its attributes, which
// every request would otherwise pay several times over. The cache is
// bounded; past maxCachedSets combinations, sets are built per use.
const maxCachedSets = 4096

// setKey is the values of a set's attributes, in the order its builder
// gives them.
type setKey [8]string

var (
	cachedSets sync.Map // setKey → metric.MeasurementOption
	cachedN    atomic.Int32
)

// attrSet returns the measurement option for the attributes kvs, whose
// values are k, from the cache when it holds them.
func attrSet(k setKey, kvs []attribute.KeyValue) metric.MeasurementOption {
	if v, ok := cachedSets.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(kvs...))
	if cachedN.Load() < maxCachedSets {
		if _, loaded := cachedSets.LoadOrStore(k, opt); !loaded {
			cachedN.Add(1)
		}
	}
	return opt
}
