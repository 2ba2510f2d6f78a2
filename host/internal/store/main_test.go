package store

import (
	"os"
	"testing"

	"github.com/llmproxy/llmproxy/host/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
